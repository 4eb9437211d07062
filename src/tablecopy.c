/*
 * tablecopy.c — the initial copy by COPY between the two servers, in one
 * exported snapshot (see tablecopy.h).
 *
 * Each worker thread holds one source session, in a REPEATABLE READ READ
 * ONLY transaction that imported the snapshot, and one target session with
 * synchronous_commit off (a crash restarts the whole copy anyway, so a lost
 * tail is never taken for done). It takes the next item from the shared
 * queue (largest first), starts COPY FROM STDIN on the target, COPY TO
 * STDOUT on the source, and hands every CopyData chunk from one to the other
 * as libpq returns it: the rows are never parsed or rebuilt. Both sessions
 * use client_encoding UTF8, so text is converted once on each side whatever
 * the two databases' encodings.
 */
#include "config.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pgsession.h"
#include "rowhash.h"
#include "tablecopy.h"

/* How often (bytes passed through) a worker adds to the shared counters and looks for a stop. */
#define TABLECOPY_CHECK_BYTES (256 * 1024)

/* ---------------------------------------------------------------- describe */

/*
 * A column's type (ty) reads back in binary on another server: built in, an
 * enum, or a domain over a built-in type; but not an OID alias (regclass,
 * regtype, ... and their arrays), whose binary form is the source's OID where
 * its text is the name the target resolves again.
 */
#define TABLECOPY_BINARY_OK                                           \
	"(ty.oid < 16384 AND ty.typname !~ '^_?reg') OR ty.typtype = 'e'" \
	" OR (ty.typtype = 'd' AND ty.typbasetype < 16384"                \
	" AND ty.typbasetype::pg_catalog.regtype::text !~ '^reg')"

/*
 * Leaves of a table (itself when it is neither partitioned nor a partition:
 * pg_partition_tree lists nothing then), with columns and size.
 */
static const char describe_sql[] =
    "SELECT format('%I.%I', n.nspname, c.relname),"
    " coalesce((SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)"
    "  FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0"
    "  AND NOT a.attisdropped AND a.attgenerated = ''), ''),"
    " coalesce((SELECT bool_and(" TABLECOPY_BINARY_OK ")"
    "  FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid"
    "  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''), "
    "true),"
    " pg_catalog.pg_relation_size(c.oid) / current_setting('block_size')::bigint,"
    " pg_catalog.pg_relation_size(c.oid)"
    " FROM (SELECT relid, isleaf, level FROM pg_catalog.pg_partition_tree($1::regclass)"
    "  UNION ALL SELECT $1::regclass, true, 0 WHERE NOT EXISTS"
    "  (SELECT FROM pg_catalog.pg_partition_tree($1::regclass))) t"
    " JOIN pg_catalog.pg_class c ON c.oid = t.relid"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " WHERE t.isleaf AND c.relkind = 'r' ORDER BY t.level, 1";

/* Before PostgreSQL 12: no pg_partition_tree, no generated columns. */
static const char describe_sql_11[] =
    "SELECT format('%I.%I', n.nspname, c.relname),"
    " coalesce((SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)"
    "  FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0"
    "  AND NOT a.attisdropped), ''),"
    " coalesce((SELECT bool_and(" TABLECOPY_BINARY_OK ")"
    "  FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid"
    "  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), true),"
    " pg_catalog.pg_relation_size(c.oid) / current_setting('block_size')::bigint,"
    " pg_catalog.pg_relation_size(c.oid)"
    " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.oid = $1::regclass AND c.relkind = 'r'";

void
tablecopy_free_tables(tablecopy_table *tables, int ntables)
{
	for (int i = 0; tables && i < ntables; i++)
	{
		free(tables[i].qname);
		free(tables[i].name);
		free(tables[i].columns);
	}
	free(tables);
}

bool
tablecopy_describe(PGconn *src, const char *const *names, int nnames, tablecopy_table **tables,
                   int *ntables, char *errbuf, size_t errlen)
{
	const char *sql = PQserverVersion(src) >= 120000 ? describe_sql : describe_sql_11;
	tablecopy_table *out = NULL;
	int n = 0, cap = 0;

	*tables = NULL;
	*ntables = 0;
	for (int i = 0; i < nnames; i++)
	{
		const char *params[1] = {names[i]};
		PGresult *res = PQexecParams(src, sql, 1, NULL, params, NULL, NULL, 0);

		if (PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			snprintf(errbuf, errlen, "could not describe %s on the source: %s", names[i],
			         PQerrorMessage(src));
			PQclear(res);
			tablecopy_free_tables(out, n);
			return false;
		}
		for (int r = 0; r < PQntuples(res); r++)
		{
			if (n == cap)
			{
				int ncap = cap ? cap * 2 : 16;
				tablecopy_table *grown = realloc(out, (size_t)ncap * sizeof(*out));

				if (grown == NULL)
				{
					PQclear(res);
					tablecopy_free_tables(out, n);
					snprintf(errbuf, errlen, "out of memory");
					return false;
				}
				out = grown;
				cap = ncap;
			}
			out[n].qname = strdup(PQgetvalue(res, r, 0));
			out[n].name = strdup(names[i]);
			out[n].columns = strdup(PQgetvalue(res, r, 1));
			out[n].binary_ok = strcmp(PQgetvalue(res, r, 2), "t") == 0;
			out[n].pages = atoll(PQgetvalue(res, r, 3));
			out[n].bytes = atoll(PQgetvalue(res, r, 4));
			n++;
			if (out[n - 1].qname == NULL || out[n - 1].name == NULL || out[n - 1].columns == NULL)
			{
				PQclear(res);
				tablecopy_free_tables(out, n);
				snprintf(errbuf, errlen, "out of memory");
				return false;
			}
		}
		PQclear(res);
	}
	*tables = out;
	*ntables = n;
	return true;
}

/* -------------------------------------------------------------------- plan */

static int
tablecopy_cmp_items(const void *a, const void *b)
{
	const tablecopy_item *x = a, *y = b;

	if (x->bytes != y->bytes)
		return x->bytes > y->bytes ? -1 : 1;
	if (x->table != y->table)
		return x->table < y->table ? -1 : 1;
	return x->first_page < y->first_page ? -1 : x->first_page > y->first_page;
}

bool
tablecopy_plan(const tablecopy_table *tables, int ntables, int64_t range_pages,
               tablecopy_item **items, int *nitems)
{
	size_t count = 0;
	tablecopy_item *out;
	int n = 0;

	*items = NULL;
	*nitems = 0;
	for (int i = 0; i < ntables; i++)
		count += range_pages > 0 && tables[i].pages > range_pages
		             ? (size_t)((tables[i].pages + range_pages - 1) / range_pages)
		             : 1;
	out = calloc(count ? count : 1, sizeof(*out));
	if (out == NULL)
		return false;
	for (int i = 0; i < ntables; i++)
	{
		const tablecopy_table *t = &tables[i];

		if (range_pages > 0 && t->pages > range_pages)
		{
			int64_t per_page = t->pages > 0 ? t->bytes / t->pages : 0;

			for (int64_t first = 0; first < t->pages; first += range_pages)
			{
				int64_t end = first + range_pages;

				out[n].table = i;
				out[n].first_page = first;
				out[n].end_page = end >= t->pages ? 0 : end; /* the last one: to the end */
				out[n].bytes = per_page * ((end >= t->pages ? t->pages : end) - first);
				n++;
			}
		}
		else
		{
			out[n].table = i;
			out[n].bytes = t->bytes;
			n++;
		}
	}
	qsort(out, (size_t)n, sizeof(*out), tablecopy_cmp_items);
	*items = out;
	*nitems = n;
	return true;
}

int64_t
tablecopy_range_pages(const tablecopy_table *tables, int ntables, int64_t range_pages, int jobs)
{
	int64_t pages = 0, share;

	if (range_pages <= 0 || jobs <= 1)
		return range_pages;
	for (int i = 0; i < ntables; i++)
		pages += tables[i].pages;
	share = (pages + jobs - 1) / jobs;
	return share >= TABLECOPY_MIN_RANGE_PAGES && share < range_pages ? share : range_pages;
}

/* ---------------------------------------------------------------- statements */

bool
tablecopy_source_sql(const tablecopy_table *t, const tablecopy_item *it, bool binary, strbuf *out)
{
	bool ok;

	strbuf_reset(out);
	if (it->first_page == 0 && it->end_page == 0)
		ok = strbuf_appendf(out, "COPY %s%s%s%s TO STDOUT", t->qname, t->columns[0] ? " (" : "",
		                    t->columns, t->columns[0] ? ")" : "");
	else
	{
		ok = strbuf_appendf(out, "COPY (SELECT %s FROM ONLY %s WHERE ctid >= '(%lld,0)'::tid",
		                    t->columns, t->qname, (long long)it->first_page);
		if (ok && it->end_page > 0)
			ok = strbuf_appendf(out, " AND ctid < '(%lld,0)'::tid", (long long)it->end_page);
		ok = ok && strbuf_append_cstr(out, ") TO STDOUT");
	}
	if (ok && binary && t->binary_ok)
		ok = strbuf_append_cstr(out, " (FORMAT binary)");
	return ok;
}

bool
tablecopy_target_sql(const tablecopy_table *t, bool binary, strbuf *out)
{
	strbuf_reset(out);
	return strbuf_appendf(out, "COPY %s%s%s%s FROM STDIN%s", t->qname, t->columns[0] ? " (" : "",
	                      t->columns, t->columns[0] ? ")" : "",
	                      binary && t->binary_ok ? " (FORMAT binary)" : "");
}

/* --------------------------------------------------------------------- run */

/* What the workers share; everything below mu is guarded by it. */
typedef struct tablecopy_shared
{
	const tablecopy_opts *o;
	const tablecopy_table *tables;
	const tablecopy_item *items;
	int nitems;
	int64_t bytes_total;
	int64_t t0_ms;
	int *parts_left; /* per table: its parts not yet copied (owned, ntables) */
	int64_t *table_rows, *table_bytes, *table_total; /* per table (owned, ntables) */
	int64_t last_tick_ms;
	pthread_mutex_t mu;
	int next;         /* the next item to take */
	int done;         /* items finished */
	int64_t rows;     /* rows copied, all items */
	int64_t bytes;    /* bytes passed through, all items */
	bool failed;      /* a worker failed: the others stop */
	bool interrupted; /* a worker saw *o->interrupted */
	char errmsg[2048];
} tablecopy_shared;

typedef struct tablecopy_worker
{
	tablecopy_shared *sh;
	pthread_t thread;
	bool started;
	PGconn *src, *tgt; /* owned by the worker while it runs */
	int64_t busy_ms;   /* spent copying parts */
} tablecopy_worker;

static bool
tablecopy_stopping(tablecopy_shared *sh)
{
	bool stop;

	pthread_mutex_lock(&sh->mu);
	if (sh->o->interrupted && *sh->o->interrupted)
		sh->interrupted = true;
	stop = sh->failed || sh->interrupted;
	pthread_mutex_unlock(&sh->mu);
	return stop;
}

/* Record the first failure; the others stop at their next chunk. */
static void __attribute__((format(printf, 2, 3)))
tablecopy_fail(tablecopy_shared *sh, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&sh->mu);
	if (!sh->failed && !sh->interrupted)
	{
		va_start(ap, fmt);
		vsnprintf(sh->errmsg, sizeof(sh->errmsg), fmt, ap);
		va_end(ap);
		sh->failed = true;
	}
	pthread_mutex_unlock(&sh->mu);
}

static bool
tablecopy_exec(PGconn *c, const char *sql, tablecopy_shared *sh, const char *side)
{
	PGresult *res = PQexec(c, sql);
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
		tablecopy_fail(sh, "the copy could not prepare its %s session: %s", side,
		               PQerrorMessage(c));
	PQclear(res);
	return ok;
}

/* Open the worker's two sessions: the source's in the snapshot. */
static bool
tablecopy_connect(tablecopy_worker *w)
{
	tablecopy_shared *sh = w->sh;
	pgsession_opts so = {
	    .conninfo = sh->o->source, .role = PGSESSION_SOURCE, .client_encoding = "UTF8"};
	pgsession_opts to = {
	    .conninfo = sh->o->target, .role = PGSESSION_TARGET, .client_encoding = "UTF8"};
	char why[1024], sql[256];
	char *snap;

	if ((w->src = pgsession_open(&so, why, sizeof(why))) == NULL)
	{
		tablecopy_fail(sh, "the copy cannot connect to the %s: %s", "source", why);
		return false;
	}
	if ((w->tgt = pgsession_open(&to, why, sizeof(why))) == NULL)
	{
		tablecopy_fail(sh, "the copy cannot connect to the %s: %s", "target", why);
		return false;
	}
	snap = PQescapeLiteral(w->src, sh->o->snapshot, strlen(sh->o->snapshot));
	if (snap == NULL)
	{
		tablecopy_fail(sh, "the copy could not quote the snapshot %s", sh->o->snapshot);
		return false;
	}
	snprintf(sql, sizeof(sql), "SET TRANSACTION SNAPSHOT %s", snap);
	PQfreemem(snap);
	return tablecopy_exec(w->src, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", sh,
	                      "source") &&
	       tablecopy_exec(w->src, sql, sh, "source") &&
	       tablecopy_exec(w->tgt, "SET synchronous_commit = off", sh, "target") &&
	       /* digested rows print as the verify's own read of the target will */
	       (sh->o->sums == NULL || (tablecopy_exec(w->src, ROWHASH_TEXT_SETTINGS, sh, "source") &&
	                                tablecopy_exec(w->tgt, ROWHASH_TEXT_SETTINGS, sh, "target")));
}

/* With sh->mu held: tell the caller where the copy stands. */
static void
tablecopy_report(tablecopy_shared *sh, int table, bool part_done)
{
	tablecopy_progress p = {.table = sh->tables[table].qname,
	                        .part_done = part_done,
	                        .items_done = sh->done,
	                        .items_total = sh->nitems,
	                        .rows = sh->rows,
	                        .bytes = sh->bytes,
	                        .bytes_total = sh->bytes_total,
	                        .table_rows = sh->table_rows[table],
	                        .table_bytes = sh->table_bytes[table],
	                        .table_bytes_total = sh->table_total[table],
	                        .table_done = sh->parts_left[table] == 0};
	int64_t now = cli_now_ms();

	if (sh->o->progress == NULL || (!part_done && now - sh->last_tick_ms < TABLECOPY_TICK_MS))
		return;
	sh->last_tick_ms = now;
	p.seconds = (double)(now - sh->t0_ms) / 1000.0;
	sh->o->progress(sh->o->progress_arg, &p);
}

/* Bytes passed through for table: counted, a tick maybe; true to go on. */
static bool
tablecopy_passed(tablecopy_shared *sh, int table, int64_t bytes)
{
	bool stop;

	pthread_mutex_lock(&sh->mu);
	sh->bytes += bytes;
	sh->table_bytes[table] += bytes;
	if (sh->o->interrupted && *sh->o->interrupted)
		sh->interrupted = true;
	stop = sh->failed || sh->interrupted;
	if (!stop)
		tablecopy_report(sh, table, false);
	pthread_mutex_unlock(&sh->mu);
	return !stop;
}

/* Copy one item; false (with the failure recorded) or when stopping. */
static bool
tablecopy_item_run(tablecopy_worker *w, const tablecopy_item *it, strbuf *sql)
{
	tablecopy_shared *sh = w->sh;
	const tablecopy_table *t = &sh->tables[it->table];
	PGresult *res;
	int64_t bytes = 0, counted = 0, rows;
	int got;
	char *buf;
	bool ok = true, out_ok;
	rowhash h;

	if (!tablecopy_target_sql(t, sh->o->binary, sql))
	{
		tablecopy_fail(sh, "out of memory");
		return false;
	}
	res = PQexec(w->tgt, strbuf_data(sql));
	if (PQresultStatus(res) != PGRES_COPY_IN)
	{
		tablecopy_fail(sh, "could not copy into %s on the target: %s", t->qname,
		               PQerrorMessage(w->tgt));
		PQclear(res);
		return false;
	}
	PQclear(res);
	if (!tablecopy_source_sql(t, it, sh->o->binary, sql))
	{
		(void)PQputCopyEnd(w->tgt, "out of memory");
		PQclear(PQgetResult(w->tgt));
		tablecopy_fail(sh, "out of memory");
		return false;
	}
	res = PQexec(w->src, strbuf_data(sql));
	if (PQresultStatus(res) != PGRES_COPY_OUT)
	{
		tablecopy_fail(sh, "could not copy %s from the source: %s", t->qname,
		               PQerrorMessage(w->src));
		PQclear(res);
		(void)PQputCopyEnd(w->tgt, "the source's COPY failed");
		PQclear(PQgetResult(w->tgt));
		return false;
	}
	PQclear(res);
	if (!rowhash_init(&h, sh->o->binary && t->binary_ok))
	{
		rowhash_free(&h);
		(void)PQputCopyEnd(w->tgt, "out of memory");
		PQclear(PQgetResult(w->tgt));
		tablecopy_fail(sh, "out of memory");
		return false;
	}
	while ((got = PQgetCopyData(w->src, &buf, 0)) > 0)
	{
		/* the rows as they pass, the very bytes the target gets */
		if (sh->o->sums && !rowhash_feed(&h, buf, (size_t)got))
		{
			PQfreemem(buf);
			tablecopy_fail(sh, "could not read the rows of %s from the source: %s", t->qname,
			               h.error);
			ok = false;
			break;
		}
		ok = PQputCopyData(w->tgt, buf, got) == 1;
		PQfreemem(buf);
		bytes += got;
		if (!ok)
		{
			tablecopy_fail(sh, "could not copy into %s on the target: %s", t->qname,
			               PQerrorMessage(w->tgt));
			break;
		}
		/* every 256 kB: counted for the progress; another worker's failure or the
		   operator's Ctrl+C stops this one */
		if (bytes - counted >= TABLECOPY_CHECK_BYTES)
		{
			ok = tablecopy_passed(sh, it->table, bytes - counted);
			counted = bytes;
			if (!ok)
				break;
		}
	}
	if (!ok)
	{
		rowhash_free(&h);
		/* the source's COPY is left unread: the session is closed without it */
		(void)PQputCopyEnd(w->tgt, "the copy was stopped");
		PQclear(PQgetResult(w->tgt));
		return false;
	}
	out_ok = got == -1;
	res = PQgetResult(w->src);
	out_ok = out_ok && PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	while ((res = PQgetResult(w->src)) != NULL)
		PQclear(res);
	if (out_ok && sh->o->sums && !rowhash_finish(&h))
	{
		rowhash_free(&h);
		tablecopy_fail(sh, "could not read the rows of %s from the source: %s", t->qname, h.error);
		(void)PQputCopyEnd(w->tgt, "the source's COPY data was cut");
		PQclear(PQgetResult(w->tgt));
		return false;
	}
	rowhash_free(&h);
	if (!out_ok)
	{
		tablecopy_fail(sh, "could not copy %s from the source: %s", t->qname,
		               PQerrorMessage(w->src));
		(void)PQputCopyEnd(w->tgt, "the source's COPY failed");
		PQclear(PQgetResult(w->tgt));
		return false;
	}
	if (PQputCopyEnd(w->tgt, NULL) != 1)
	{
		tablecopy_fail(sh, "could not copy into %s on the target: %s", t->qname,
		               PQerrorMessage(w->tgt));
		return false;
	}
	res = PQgetResult(w->tgt);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		tablecopy_fail(sh, "could not copy into %s on the target: %s", t->qname,
		               PQresultErrorMessage(res));
		PQclear(res);
		while ((res = PQgetResult(w->tgt)) != NULL)
			PQclear(res);
		return false;
	}
	rows = atoll(PQcmdTuples(res));
	PQclear(res);
	while ((res = PQgetResult(w->tgt)) != NULL)
		PQclear(res);

	pthread_mutex_lock(&sh->mu);
	sh->done++;
	sh->rows += rows;
	sh->bytes += bytes - counted;
	sh->table_rows[it->table] += rows;
	sh->table_bytes[it->table] += bytes - counted;
	if (sh->o->sums)
	{
		sh->o->sums[it->table].rows += h.rows;
		sh->o->sums[it->table].sum += h.sum;
		sh->o->sums[it->table].binary = h.binary;
	}
	sh->parts_left[it->table]--;
	tablecopy_report(sh, it->table, true);
	if (sh->parts_left[it->table] == 0 && sh->o->table_done &&
	    !sh->o->table_done(sh->o->table_done_arg, it->table) && !sh->failed)
	{
		snprintf(sh->errmsg, sizeof(sh->errmsg), "the copy was stopped after %s", t->qname);
		sh->failed = true;
	}
	pthread_mutex_unlock(&sh->mu);
	return true;
}

static void *
tablecopy_work(void *arg)
{
	tablecopy_worker *w = arg;
	tablecopy_shared *sh = w->sh;
	strbuf sql;

	strbuf_init(&sql);
	if (tablecopy_connect(w))
		for (;;)
		{
			int i;

			if (tablecopy_stopping(sh))
				break;
			pthread_mutex_lock(&sh->mu);
			i = sh->next < sh->nitems ? sh->next++ : -1;
			pthread_mutex_unlock(&sh->mu);
			int64_t t0;
			bool ok;

			if (i < 0)
			{
				if (sh->o->worker_idle)
				{
					pthread_mutex_lock(&sh->mu);
					sh->o->worker_idle(sh->o->table_done_arg);
					pthread_mutex_unlock(&sh->mu);
				}
				break;
			}
			t0 = cli_now_ms();
			ok = tablecopy_item_run(w, &sh->items[i], &sql);
			w->busy_ms += cli_now_ms() - t0;
			if (!ok)
				break;
		}
	strbuf_free(&sql);
	PQfinish(w->src);
	PQfinish(w->tgt);
	w->src = w->tgt = NULL;
	return NULL;
}

static void
tablecopy_free_shared(tablecopy_shared *sh)
{
	free(sh->parts_left);
	free(sh->table_rows);
	free(sh->table_bytes);
	free(sh->table_total);
	pthread_mutex_destroy(&sh->mu);
}

bool
tablecopy_run(const tablecopy_opts *o, const tablecopy_table *tables, const tablecopy_item *items,
              int nitems, tablecopy_result *r, char *errbuf, size_t errlen)
{
	tablecopy_shared sh;
	tablecopy_worker *w;
	int nworkers = o->jobs < 1 ? 1 : o->jobs, ntables = 0;
	bool ok;

	memset(r, 0, sizeof(*r));
	if (nitems <= 0)
		return true;
	if (nworkers > nitems)
		nworkers = nitems;
	memset(&sh, 0, sizeof(sh));
	sh.o = o;
	sh.tables = tables;
	sh.items = items;
	sh.nitems = nitems;
	sh.t0_ms = cli_now_ms();
	for (int i = 0; i < nitems; i++)
	{
		sh.bytes_total += items[i].bytes;
		if (items[i].table >= ntables)
			ntables = items[i].table + 1;
	}
	sh.parts_left = calloc((size_t)ntables, sizeof(int));
	sh.table_rows = calloc((size_t)ntables, sizeof(int64_t));
	sh.table_bytes = calloc((size_t)ntables, sizeof(int64_t));
	sh.table_total = calloc((size_t)ntables, sizeof(int64_t));
	for (int i = 0; sh.parts_left && sh.table_total && i < nitems; i++)
	{
		sh.parts_left[items[i].table]++;
		sh.table_total[items[i].table] += items[i].bytes;
	}
	pthread_mutex_init(&sh.mu, NULL);
	w = calloc((size_t)(unsigned)nworkers, sizeof(*w));
	if (w == NULL || sh.parts_left == NULL || sh.table_rows == NULL || sh.table_bytes == NULL ||
	    sh.table_total == NULL)
	{
		free(w);
		tablecopy_free_shared(&sh);
		snprintf(errbuf, errlen, "out of memory");
		return false;
	}
	for (int i = 0; i < nworkers; i++)
	{
		w[i].sh = &sh;
		w[i].started = pthread_create(&w[i].thread, NULL, tablecopy_work, &w[i]) == 0;
		if (!w[i].started)
		{
			tablecopy_fail(&sh, "could not start a copy worker");
			break;
		}
	}
	for (int i = 0; i < nworkers; i++)
		if (w[i].started)
			pthread_join(w[i].thread, NULL);
	r->workers = nworkers;
	for (int i = 0; i < nworkers && i < TABLECOPY_BUSY_REPORTED; i++)
		r->busy_seconds[i] = (double)w[i].busy_ms / 1000.0;
	free(w);
	tablecopy_free_shared(&sh);
	r->rows = sh.rows;
	r->bytes = sh.bytes;
	r->items = sh.done;
	r->seconds = (double)(cli_now_ms() - sh.t0_ms) / 1000.0;
	r->interrupted = sh.interrupted;
	ok = !sh.failed && !sh.interrupted && sh.done == nitems;
	if (sh.failed)
		snprintf(errbuf, errlen, "%s", sh.errmsg);
	else if (sh.interrupted)
		snprintf(errbuf, errlen, "interrupted during the copy");
	else if (!ok)
		snprintf(errbuf, errlen, "the copy ended with %d of %d parts done", sh.done, nitems);
	return ok;
}
