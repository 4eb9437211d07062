/*
 * copyrun.c — --copy-method direct as phases of the run (tablecopy.c does
 * the copying): at the Dump, the snapshot of an offline run exported and the
 * tables described, so that pg_dump leaves their rows out; then the Copy
 * phase: the schema restored without its post-data, every table's rows
 * copied by COPY from the source in that snapshot, and the snapshot let go.
 * The Restore phase that follows builds the post-data (indexes, constraints,
 * triggers) on the copied rows.
 *
 * A run killed before the Copy phase ends has saved no Dumped stage: its
 * --resume starts over (the snapshot is gone), and the schema pass of the
 * new run drops what the killed one had copied (clean_target), so a half
 * copied table is never taken for done.
 *
 * Owns: m->copy_tables and m->snap_conn (copyrun_release). Never: copies a
 * row outside the snapshot the schema was dumped in.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "migrate_internal.h"
#include "postrun.h"
#include "termline.h"

/* Offline: a session exports the snapshot, and holds it until the copy is done. */
static bool
copyrun_export(mig *m, char *errbuf, size_t errlen)
{
	if ((m->snap_conn = mig_connect(m->o.source, "source", errbuf, errlen)) == NULL)
		return false;
	return mig_exec(m->snap_conn, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", errbuf,
	                errlen) &&
	       mig_value(m->snap_conn, "SELECT pg_catalog.pg_export_snapshot()", m->slot.snapshot,
	                 sizeof(m->slot.snapshot), errbuf, errlen);
}

bool
copyrun_prepare(mig *m, char *errbuf, size_t errlen)
{
	scope_filters f = mig_scope(m);
	char **names;
	int n;
	bool ok;
	int64_t bytes = 0;

	if (!m->o.online && m->snap_conn == NULL && !copyrun_export(m, errbuf, errlen))
		return false;
	if (!scope_list_tables(m->src, &f, &names, &n, errbuf, errlen))
		return false;
	tablecopy_free_tables(m->copy_tables, m->ncopy_tables);
	m->copy_tables = NULL;
	ok = tablecopy_describe(m->src, (const char *const *)names, n, &m->copy_tables,
	                        &m->ncopy_tables, errbuf, errlen);
	scope_free(names, n);
	if (!ok)
		return false;
	for (int i = 0; i < m->ncopy_tables; i++)
		bytes += m->copy_tables[i].bytes;
	event_say("Dump", "info",
	          "--copy-method direct: the dump holds the schema; the rows of %d table%s (%.1f MB on "
	          "the source) are copied by COPY in the same snapshot",
	          m->ncopy_tables, m->ncopy_tables == 1 ? "" : "s", (double)bytes / 1048576.0);
	return true;
}

/* The snapshot and the described tables let go (the digests stay for the verify). */
static void
copyrun_let_go(mig *m)
{
	if (m->snap_conn)
	{
		PQclear(PQexec(m->snap_conn, "COMMIT"));
		PQfinish(m->snap_conn);
		m->snap_conn = NULL;
	}
	tablecopy_free_tables(m->copy_tables, m->ncopy_tables);
	m->copy_tables = NULL;
	m->ncopy_tables = 0;
}

static void
copyrun_free_copied(mig *m)
{
	for (int i = 0; m->copied && i < m->ncopied; i++)
	{
		free((char *)m->copied[i].name);
		free((char *)m->copied[i].leaf);
		free((char *)m->copied[i].columns);
	}
	free(m->copied);
	m->copied = NULL;
	m->ncopied = 0;
}

void
copyrun_release(mig *m)
{
	copyrun_let_go(m);
	copyrun_free_copied(m);
}

/*
 * Keep the digest of every copied leaf of a table in scope all of whose
 * leaves were copied (one left out, as outside the migrated schemas, leaves
 * its table to the verify's reading of both sides). Out of memory keeps
 * none: the verify then reads both sides.
 */
static void
copyrun_keep_digests(mig *m, int ncopy, const tablecopy_sum *sums)
{
	int n = 0;

	copyrun_free_copied(m);
	m->copied = calloc((size_t)(ncopy ? ncopy : 1), sizeof(*m->copied));
	if (m->copied == NULL)
		return;
	for (int i = 0; i < ncopy; i++)
	{
		const tablecopy_table *t = &m->copy_tables[i];
		bool whole = true;
		verify_copied *c = &m->copied[n];

		for (int j = ncopy; j < m->ncopy_tables && whole; j++)
			whole = strcmp(m->copy_tables[j].name, t->name) != 0;
		if (!whole)
			continue;
		c->name = strdup(t->name);
		c->leaf = strdup(t->qname);
		c->columns = strdup(t->columns);
		c->binary = sums[i].binary;
		c->rows = sums[i].rows;
		c->sum = sums[i].sum;
		m->ncopied = ++n;
		if (c->name == NULL || c->leaf == NULL || c->columns == NULL)
		{
			copyrun_free_copied(m);
			return;
		}
	}
}

/*
 * Before a clean schema pass: the target's foreign keys that name a
 * migrated table (either end) are dropped, so that pg_restore --clean can
 * drop the tables (the dump's foreign keys come back with the post-data).
 */
static bool
copyrun_drop_foreign_keys(mig *m, char *errbuf, size_t errlen)
{
	scope_filters f = mig_scope(m);
	char **names;
	int n, dropped = 0;
	bool ok = true;

	if (!scope_list_tables(m->src, &f, &names, &n, errbuf, errlen))
		return false;
	for (int i = 0; ok && i < n; i++)
	{
		const char *params[1] = {names[i]};
		PGresult *res = PQexecParams(
		    m->tgt,
		    "SELECT format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', c.conrelid::regclass, "
		    "c.conname) FROM pg_catalog.pg_constraint c WHERE c.contype = 'f' AND "
		    "c.conparentid = 0 AND (c.conrelid = pg_catalog.to_regclass($1) OR c.confrelid = "
		    "pg_catalog.to_regclass($1))",
		    1, NULL, params, NULL, NULL, 0);

		ok = PQresultStatus(res) == PGRES_TUPLES_OK;
		if (!ok)
			snprintf(errbuf, errlen, "could not read the target's foreign keys: %s",
			         PQerrorMessage(m->tgt));
		for (int r = 0; ok && r < PQntuples(res); r++)
			if ((ok = mig_exec(m->tgt, PQgetvalue(res, r, 0), errbuf, errlen)))
				dropped++;
		PQclear(res);
	}
	scope_free(names, n);
	if (ok && dropped > 0)
		event_say("Copy", "info",
		          "dropped %d foreign key%s on the target that name a migrated table, so that "
		          "its tables can be dropped and restored (the dump's come back with the "
		          "post-data)",
		          dropped, dropped == 1 ? "" : "s");
	return ok;
}

/*
 * Only the tables the schema pass created are copied: a partition in a
 * schema the filters leave out is not in the dump (as with the dump method,
 * its rows stay behind), though its partitioned table is. Said once; the
 * kept tables first in m->copy_tables, *nkept of them.
 */
static bool
copyrun_keep_restored(mig *m, int *nkept, char *errbuf, size_t errlen)
{
	strbuf left;
	int kept = 0, nleft = 0;
	bool ok = true;

	strbuf_init(&left);
	for (int i = 0; ok && i < m->ncopy_tables; i++)
	{
		const char *params[1] = {m->copy_tables[i].qname};
		PGresult *res = PQexecParams(m->tgt, "SELECT pg_catalog.to_regclass($1) IS NOT NULL", 1,
		                             NULL, params, NULL, NULL, 0);

		ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
		if (!ok)
			snprintf(errbuf, errlen, "could not look for %s on the target: %s",
			         m->copy_tables[i].qname, PQerrorMessage(m->tgt));
		else if (strcmp(PQgetvalue(res, 0, 0), "t") == 0)
		{
			tablecopy_table keep = m->copy_tables[i];

			m->copy_tables[i] = m->copy_tables[kept];
			m->copy_tables[kept++] = keep;
		}
		else if (nleft++ < 20)
			ok = strbuf_appendf(&left, "%s%s", nleft > 1 ? ", " : "", m->copy_tables[i].qname);
		PQclear(res);
	}
	if (ok && nleft > 0)
		event_say("Copy", "warning",
		          "%d partition%s outside the migrated schemas %s not copied, as the dump "
		          "leaves %s out: %s%s",
		          nleft, nleft == 1 ? "" : "s", nleft == 1 ? "is" : "are",
		          nleft == 1 ? "it" : "them", strbuf_data(&left), nleft > 20 ? ", ..." : "");
	strbuf_free(&left);
	if (!ok)
		return false;
	/* the ones left out stay in the array past the kept ones, to be freed with it */
	*nkept = kept;
	return true;
}

/*
 * Progress (called serialised by tablecopy at the end of each part and, as
 * the bytes pass, at most 4 times a second). On a terminal (as
 * dumprun_progress decides: not --json, not --verbose), one bar updated in
 * place on every call; else one Copy event a second at most, and the last.
 * The sizes are the source's on-disk sizes: an estimate of the COPY bytes.
 */
typedef struct copyrun_meter
{
	int64_t last_ms;
	bool bar; /* a terminal: the bar, no per-part events */
} copyrun_meter;

#define COPYRUN_BAR 20

static void
copyrun_progress(void *arg, const tablecopy_progress *p)
{
	copyrun_meter *meter = arg;
	int64_t now = cli_now_ms();
	double rate = p->seconds > 0 ? (double)p->bytes / p->seconds : 0;
	bool last = p->part_done && p->items_done == p->items_total;
	/* past the estimate: the estimate was low, the bytes so far are the floor */
	int64_t total = last || p->bytes > p->bytes_total ? p->bytes : p->bytes_total;
	int64_t ttotal = p->table_done || p->table_bytes > p->table_bytes_total ? p->table_bytes
	                                                                        : p->table_bytes_total;
	int tpct = ttotal > 0 ? (int)(100 * p->table_bytes / ttotal) : 100;
	event e;

	if (meter->bar)
	{
		char line[256];
		int filled = total > 0 ? (int)(COPYRUN_BAR * p->bytes / total) : COPYRUN_BAR;
		int len;

		/* what matters most first: a narrow terminal cuts the end */
		len = snprintf(line, sizeof(line), "Copy [%.*s%*s] %d/%d parts, %.0f/%.0f MB, %.1f MB/s",
		               filled, "####################", COPYRUN_BAR - filled, "", p->items_done,
		               p->items_total, (double)p->bytes / 1048576.0, (double)total / 1048576.0,
		               rate / 1048576.0);
		if (len > 0 && (size_t)len < sizeof(line) && rate > 0 && total > p->bytes)
			len += snprintf(line + len, sizeof(line) - (size_t)len, ", ETA %.0f s",
			                (double)(total - p->bytes) / rate);
		if (len > 0 && (size_t)len < sizeof(line))
			len +=
			    snprintf(line + len, sizeof(line) - (size_t)len, ", %lld rows", (long long)p->rows);
		if (len > 0 && (size_t)len < sizeof(line) && !last)
			snprintf(line + len, sizeof(line) - (size_t)len, " | %.40s %d%%", p->table, tpct);
		/* one line of the terminal, redrawn in place; an event printed meanwhile clears it */
		termline_draw("%s", line);
		if (last)
			termline_done();
		return;
	}
	if (!last && now - meter->last_ms < 1000)
		return;
	meter->last_ms = now;
	event_begin(&e, "Copy");
	event_str(&e, "table", p->table);
	event_int(&e, "table_rows", p->table_rows);
	event_int(&e, "table_bytes", p->table_bytes);
	event_int(&e, "table_bytes_expected", ttotal);
	event_int(&e, "parts_done", p->items_done);
	event_int(&e, "parts", p->items_total);
	event_int(&e, "rows", p->rows);
	event_int(&e, "bytes", p->bytes);
	event_int(&e, "bytes_expected", total);
	event_num(&e, "mb_per_second", rate / 1048576.0);
	if (rate > 0 && total > p->bytes)
		event_num(&e, "eta_seconds", (double)(total - p->bytes) / rate);
	event_end(&e, "copied %.0f of %.0f MB, %d of %d parts (%s: %d%%), %.1f MB/s",
	          (double)p->bytes / 1048576.0, (double)total / 1048576.0, p->items_done,
	          p->items_total, p->table, tpct, rate / 1048576.0);
}

/*
 * For the figures: the tables copied in more than one part ("name:parts",
 * comma-separated, the first 10) and each worker's busy seconds.
 */
static bool
copyrun_split(const tablecopy_table *tables, int ntables, const tablecopy_item *items, int nitems,
              const tablecopy_result *res, strbuf *split, strbuf *busy)
{
	int *parts = calloc((size_t)ntables + 1, sizeof(int));
	int shown = 0;
	bool ok = parts != NULL;

	for (int i = 0; ok && i < nitems; i++)
		parts[items[i].table]++;
	for (int t = 0; ok && t < ntables && shown < 10; t++)
		if (parts[t] > 1)
			ok = strbuf_appendf(split, "%s%s:%d", shown++ ? "," : "", tables[t].qname, parts[t]);
	for (int i = 0; ok && i < res->workers && i < TABLECOPY_BUSY_REPORTED; i++)
		ok = strbuf_appendf(busy, "%s%.1f", i ? "," : "", res->busy_seconds[i]);
	free(parts);
	return ok;
}

bool
copyrun_copy(mig *m, char *errbuf, size_t errlen)
{
	dumprestore_restore r;
	tablecopy_item *items = NULL;
	int nitems = 0, ncopy = 0;
	tablecopy_result res;
	copyrun_meter meter = {.bar = dumprun_progress(m)};
	postrun post;
	strbuf split, busy;
	bool clean = m->clean_target || m->o.drop_target_first, warned, ok;
	tablecopy_opts to = {.source = m->o.source,
	                     .target = m->o.target,
	                     .snapshot = m->slot.snapshot,
	                     .jobs = migopts_copy_jobs(&m->o),
	                     /* binary COPY between servers of the same major version only */
	                     .binary =
	                         PQserverVersion(m->src) / 10000 == PQserverVersion(m->tgt) / 10000,
	                     .interrupted = &mig_signals,
	                     .progress = copyrun_progress,
	                     .progress_arg = &meter,
	                     .table_done = postrun_table_done,
	                     .worker_idle = postrun_worker_idle,
	                     .table_done_arg = &post};
	tablecopy_sum *sums = NULL;
	event e;

	m->postdata_list[0] = '\0';
	memset(&post, 0, sizeof(post));
	strbuf_init(&split);
	strbuf_init(&busy);
	errbuf[0] = '\0';
	if (m->copy_tables == NULL && !copyrun_prepare(m, errbuf, errlen))
		return false;
	if (clean && !copyrun_drop_foreign_keys(m, errbuf, errlen))
		return false;
	dumprestore_restore_direct(&r, &m->o, m->bindir, m->tgt_ci.safe, dumprun_progress(m), true,
	                           clean);
	event_say("Copy", "info", "pg_restore pre-data%s",
	          clean ? " (dropping what is there first)" : "");
	if (!dumprun_child(m, "Restore", r.argv[0], m->tgt_ci.password, &warned, errbuf, errlen))
		return false;
	if (!copyrun_keep_restored(m, &ncopy, errbuf, errlen))
		return false;
	if (!postrun_prepare(&post, m, ncopy, errbuf, errlen))
	{
		postrun_free(&post);
		return false;
	}
	/* ranges only where a TID range scan reads them in place (PostgreSQL 14+); a table
	   larger than the workers' share is split too */
	if (!tablecopy_plan(m->copy_tables, ncopy,
	                    tablecopy_range_pages(m->copy_tables, ncopy,
	                                          PQserverVersion(m->src) >= 140000
	                                              ? (int64_t)(m->o.split_bytes / 8192)
	                                              : 0,
	                                          to.jobs),
	                    &items, &nitems))
	{
		postrun_free(&post);
		snprintf(errbuf, errlen, "out of memory");
		return false;
	}
	event_say("Copy", "info", "copying %d table%s in %d part%s with %d job%s%s", ncopy,
	          ncopy == 1 ? "" : "s", nitems, nitems == 1 ? "" : "s", to.jobs,
	          to.jobs == 1 ? "" : "s", to.binary ? " (binary where the types allow)" : "");
	/* offline with a verify: the source's rows digested as they pass, so that the verify
	   reads only the target (online, the stream changes the rows after the copy) */
	if (!m->o.online && m->o.verify != 0 &&
	    (sums = calloc((size_t)(ncopy ? ncopy : 1), sizeof(*sums))) != NULL)
		to.sums = sums;
	if (!postrun_start(&post))
	{
		to.table_done = NULL; /* no runner: all the post-data in the Restore phase */
		to.worker_idle = NULL;
	}
	ok = tablecopy_run(&to, m->copy_tables, items, nitems, &res, errbuf, errlen);
	if (ok && sums)
		copyrun_keep_digests(m, ncopy, sums);
	free(sums);
	if (!ok)
	{
		free(items);
		postrun_close(&post);
		if (post.failed)
			snprintf(errbuf, errlen, "%s", post.errmsg);
		postrun_free(&post);
		return false;
	}
	ok = postrun_finish(m, &post, errbuf, errlen) &&
	     copyrun_split(m->copy_tables, ncopy, items, nitems, &res, &split, &busy);
	postrun_free(&post);
	free(items);
	if (!ok)
	{
		strbuf_free(&split);
		strbuf_free(&busy);
		if (errbuf[0] == '\0')
			snprintf(errbuf, errlen, "out of memory");
		return false;
	}
	event_begin(&e, "Copy");
	event_str(&e, "split", strbuf_data(&split));
	event_str(&e, "worker_busy_seconds", strbuf_data(&busy));
	event_int(&e, "tables", ncopy);
	event_int(&e, "parts", res.items);
	event_int(&e, "rows", res.rows);
	event_int(&e, "bytes", res.bytes);
	event_num(&e, "seconds", res.seconds);
	event_num(&e, "mb_per_second",
	          res.seconds > 0 ? (double)res.bytes / 1048576.0 / res.seconds : 0);
	event_end(&e, "copy done: %lld rows", (long long)res.rows);
	strbuf_free(&split);
	strbuf_free(&busy);
	/* the exported snapshot is no longer needed: an offline run lets it go */
	copyrun_let_go(m);
	return true;
}
