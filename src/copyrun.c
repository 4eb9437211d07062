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

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "migrate_internal.h"
#include "postdata.h"
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
 * Post-data overlap: a table's own post-data (postdata.h) is restored by a
 * pg_restore --use-list once all its parts are in and a copy worker has
 * nothing left to take (so the index builds use the share of the machine the
 * copy's tail leaves free, never slowing a copy that keeps every worker
 * busy), by one runner thread, one table after the other, with as many
 * pg_restore jobs as there are idle workers. When the copy ends the runner
 * stops after the table it is on, and what is left (what spans tables, and
 * the tables the runner did not reach) goes to the Restore phase as one list
 * (m->postdata_list) run with --jobs.
 */
typedef struct copyrun_post
{
	mig *m;
	postdata_entry *entries; /* owned (postdata_free) */
	int nentries;
	int ntables;
	int *count; /* owned: per table, its entries */
	bool *done; /* owned: per table, its entries restored */
	int *queue; /* owned: tables whose rows are in, in order (ntables at most) */
	int qhead, qlen;
	bool closing; /* the copy is over: stop after the current table */
	int idle;     /* copy workers with no part left to take */
	bool failed;
	bool warned; /* pg_restore reported errors accepted by --allow-restore-errors */
	int tables_done;
	double busy_seconds;
	char errmsg[2048];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	bool started;
	bool inited; /* mu and cv */
} copyrun_post;

/* The list file of table t (-1: the final pass) in the dump directory. */
static void
copyrun_list_path(const mig *m, int t, char *path, size_t len)
{
	if (t < 0)
		snprintf(path, len, "%s/postdata-rest.list", m->o.dump_path);
	else
		snprintf(path, len, "%s/postdata-%d.list", m->o.dump_path, t);
}

static bool
copyrun_write_list(copyrun_post *pp, int t, const char *path, char *errbuf, size_t errlen)
{
	FILE *f = fopen(path, "w");
	bool ok;

	if (f == NULL)
	{
		snprintf(errbuf, errlen, "could not write %s: %m", path);
		return false;
	}
	(void)postdata_write_list(f, pp->entries, pp->nentries, t, pp->done);
	ok = !ferror(f);
	if (fclose(f) != 0 || !ok)
	{
		snprintf(errbuf, errlen, "could not write %s: %m", path);
		return false;
	}
	return true;
}

static void *
copyrun_post_work(void *arg)
{
	copyrun_post *pp = arg;
	mig *m = pp->m;

	for (;;)
	{
		char path[1200], err[1024];
		dumprestore_restore r;
		bool warned = false, ok;
		int t, jobs;
		int64_t t0;

		pthread_mutex_lock(&pp->mu);
		/* a table's post-data waits for a worker with nothing left to copy: while every
		   worker copies, an index build would only slow the copy down */
		while ((pp->qhead == pp->qlen || pp->idle == 0) && !pp->closing)
			pthread_cond_wait(&pp->cv, &pp->mu);
		if (pp->closing || pp->failed)
		{
			pthread_mutex_unlock(&pp->mu);
			break;
		}
		t = pp->queue[pp->qhead++];
		jobs = pp->idle; /* as many jobs as workers have nothing left to copy */
		pthread_mutex_unlock(&pp->mu);
		t0 = cli_now_ms();
		copyrun_list_path(m, t, path, sizeof(path));
		ok = copyrun_write_list(pp, t, path, err, sizeof(err));
		if (ok)
		{
			dumprestore_restore_listed(&r, &m->o, m->bindir, m->tgt_ci.safe, path, jobs, false);
			ok = dumprun_child(m, "Restore", r.argv[0], m->tgt_ci.password, &warned, err,
			                   sizeof(err));
			(void)unlink(path);
		}
		pthread_mutex_lock(&pp->mu);
		pp->busy_seconds += (double)(cli_now_ms() - t0) / 1000.0;
		if (ok)
		{
			pp->done[t] = true;
			pp->tables_done++;
			pp->warned |= warned;
		}
		else
		{
			snprintf(pp->errmsg, sizeof(pp->errmsg), "the post-data of %s: %s",
			         m->copy_tables[t].qname, err);
			pp->failed = true;
		}
		pthread_mutex_unlock(&pp->mu);
		if (!ok)
			break;
	}
	return NULL;
}

/* tablecopy's table_done: queue the table's post-data; false once the runner failed. */
static bool
copyrun_post_table_done(void *arg, int table)
{
	copyrun_post *pp = arg;
	bool ok;

	pthread_mutex_lock(&pp->mu);
	ok = !pp->failed;
	if (ok && table < pp->ntables && pp->count[table] > 0 && pp->qlen < pp->ntables)
	{
		pp->queue[pp->qlen++] = table;
		pthread_cond_signal(&pp->cv);
	}
	pthread_mutex_unlock(&pp->mu);
	return ok;
}

/* tablecopy's worker_idle: a worker's share of the machine is free for the post-data. */
static void
copyrun_post_worker_idle(void *arg)
{
	copyrun_post *pp = arg;

	pthread_mutex_lock(&pp->mu);
	pp->idle++;
	pthread_cond_signal(&pp->cv);
	pthread_mutex_unlock(&pp->mu);
}

/* Which copied table each entry of one table belongs to, asked of the source. */
static bool
copyrun_post_owners(copyrun_post *pp, char *errbuf, size_t errlen)
{
	mig *m = pp->m;
	strbuf cats, oids;
	PGresult *res;
	const char *params[2];
	bool ok = true;

	strbuf_init(&cats);
	strbuf_init(&oids);
	ok = strbuf_append_cstr(&cats, "{") && strbuf_append_cstr(&oids, "{");
	for (int i = 0; ok && i < pp->nentries; i++)
		ok = strbuf_appendf(&cats, "%s%u", i ? "," : "",
		                    pp->entries[i].of_one_table ? pp->entries[i].catalog : 1u) &&
		     strbuf_appendf(&oids, "%s%u", i ? "," : "",
		                    pp->entries[i].of_one_table ? pp->entries[i].oid : 0u);
	ok = ok && strbuf_append_cstr(&cats, "}") && strbuf_append_cstr(&oids, "}");
	if (!ok)
	{
		strbuf_free(&cats);
		strbuf_free(&oids);
		snprintf(errbuf, errlen, "out of memory");
		return false;
	}
	params[0] = strbuf_data(&cats);
	params[1] = strbuf_data(&oids);
	res = PQexecParams(
	    m->src,
	    "SELECT u.k - 1, format('%I.%I', n.nspname, c.relname)"
	    " FROM unnest($1::pg_catalog.oid[], $2::pg_catalog.oid[]) WITH ORDINALITY u(cat, obj, k)"
	    " JOIN pg_catalog.pg_class c ON c.oid = CASE u.cat"
	    "  WHEN 1259 THEN (SELECT i.indrelid FROM pg_catalog.pg_index i WHERE i.indexrelid = u.obj)"
	    "  WHEN 2606 THEN (SELECT co.conrelid FROM pg_catalog.pg_constraint co"
	    "   WHERE co.oid = u.obj AND co.contype <> 'f')"
	    "  WHEN 2620 THEN (SELECT tg.tgrelid FROM pg_catalog.pg_trigger tg WHERE tg.oid = u.obj)"
	    "  WHEN 2618 THEN (SELECT r.ev_class FROM pg_catalog.pg_rewrite r WHERE r.oid = u.obj)"
	    "  WHEN 3256 THEN (SELECT p.polrelid FROM pg_catalog.pg_policy p WHERE p.oid = u.obj)"
	    "  WHEN 3381 THEN (SELECT s.stxrelid FROM pg_catalog.pg_statistic_ext s"
	    "   WHERE s.oid = u.obj)"
	    "  WHEN 0 THEN u.obj END"
	    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	    " WHERE u.obj <> 0 AND c.relkind = 'r'",
	    2, NULL, params, NULL, NULL, 0);
	strbuf_free(&cats);
	strbuf_free(&oids);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		snprintf(errbuf, errlen,
		         "could not read on the source which table the post-data "
		         "belongs to: %s",
		         PQerrorMessage(m->src));
		PQclear(res);
		return false;
	}
	for (int r = 0; r < PQntuples(res); r++)
	{
		int i = atoi(PQgetvalue(res, r, 0));
		const char *qname = PQgetvalue(res, r, 1);

		if (i < 0 || i >= pp->nentries)
			continue;
		for (int t = 0; t < pp->ntables; t++)
			if (strcmp(m->copy_tables[t].qname, qname) == 0)
			{
				pp->entries[i].table = t;
				break;
			}
	}
	PQclear(res);
	postdata_attach(pp->entries, pp->nentries);
	for (int i = 0; i < pp->nentries; i++)
		if (pp->entries[i].table >= 0)
			pp->count[pp->entries[i].table]++;
	return true;
}

/* The dump's post-data entries, each with its table where it has one of the ncopy copied. */
static bool
copyrun_post_prepare(copyrun_post *pp, mig *m, int ncopy, char *errbuf, size_t errlen)
{
	char path[1200];
	const char *argv[8];
	strbuf text;
	FILE *f;
	bool warned, ok;
	char buf[8192];
	size_t got;

	memset(pp, 0, sizeof(*pp));
	pp->m = m;
	pp->ntables = ncopy;
	snprintf(path, sizeof(path), "%s/postdata-all.list", m->o.dump_path);
	{
		char tool[600];

		snprintf(tool, sizeof(tool), "%s/pg_restore", m->bindir);
		argv[0] = tool;
		argv[1] = "--list";
		argv[2] = "--section=post-data";
		argv[3] = "--file";
		argv[4] = path;
		argv[5] = m->o.dump_path;
		argv[6] = NULL;
		if (!dumprun_child(m, "Copy", argv, NULL, &warned, errbuf, errlen))
			return false;
	}
	if ((f = fopen(path, "r")) == NULL)
	{
		snprintf(errbuf, errlen, "could not read %s: %m", path);
		return false;
	}
	strbuf_init(&text);
	ok = true;
	while (ok && (got = fread(buf, 1, sizeof(buf), f)) > 0)
		ok = strbuf_append(&text, buf, got);
	fclose(f);
	(void)unlink(path);
	if (!ok)
	{
		strbuf_free(&text);
		snprintf(errbuf, errlen, "out of memory");
		return false;
	}
	ok = postdata_parse(strbuf_data(&text), &pp->entries, &pp->nentries, errbuf, errlen);
	strbuf_free(&text);
	if (!ok)
		return false;
	pp->count = calloc((size_t)ncopy + 1, sizeof(int));
	pp->done = calloc((size_t)ncopy + 1, sizeof(bool));
	pp->queue = calloc((size_t)ncopy + 1, sizeof(int));
	if (pp->count == NULL || pp->done == NULL || pp->queue == NULL)
	{
		snprintf(errbuf, errlen, "out of memory");
		return false;
	}
	pthread_mutex_init(&pp->mu, NULL);
	pthread_cond_init(&pp->cv, NULL);
	pp->inited = true;
	return copyrun_post_owners(pp, errbuf, errlen);
}

static void
copyrun_post_free(copyrun_post *pp)
{
	postdata_free(pp->entries, pp->nentries);
	free(pp->count);
	free(pp->done);
	free(pp->queue);
	if (pp->inited)
	{
		pthread_mutex_destroy(&pp->mu);
		pthread_cond_destroy(&pp->cv);
	}
	memset(pp, 0, sizeof(*pp));
}

/* The copy is over (or failed): the runner stops after its table; wait for it. */
static void
copyrun_post_close(copyrun_post *pp)
{
	if (!pp->started)
		return;
	pthread_mutex_lock(&pp->mu);
	pp->closing = true;
	pthread_cond_signal(&pp->cv);
	pthread_mutex_unlock(&pp->mu);
	pthread_join(pp->thread, NULL);
	pp->started = false;
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

/* After the copy: the runner joined, the final pass's list written for the Restore phase. */
static bool
copyrun_post_finish(mig *m, copyrun_post *pp, char *errbuf, size_t errlen)
{
	copyrun_post_close(pp);
	if (pp->failed)
	{
		snprintf(errbuf, errlen, "%s", pp->errmsg);
		return false;
	}
	copyrun_list_path(m, -1, m->postdata_list, sizeof(m->postdata_list));
	if (!copyrun_write_list(pp, -1, m->postdata_list, errbuf, errlen))
	{
		m->postdata_list[0] = '\0';
		return false;
	}
	if (pp->tables_done > 0)
		event_say("Copy", "info",
		          "the post-data of %d table%s built while the copy went on (%.1f s); the rest "
		          "(what spans tables) follows",
		          pp->tables_done, pp->tables_done == 1 ? "" : "s", pp->busy_seconds);
	return true;
}

bool
copyrun_copy(mig *m, char *errbuf, size_t errlen)
{
	dumprestore_restore r;
	tablecopy_item *items = NULL;
	int nitems = 0, ncopy = 0;
	tablecopy_result res;
	copyrun_meter meter = {.bar = dumprun_progress(m)};
	copyrun_post post;
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
	                     .table_done = copyrun_post_table_done,
	                     .worker_idle = copyrun_post_worker_idle,
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
	if (!copyrun_post_prepare(&post, m, ncopy, errbuf, errlen))
	{
		copyrun_post_free(&post);
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
		copyrun_post_free(&post);
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
	post.started = pthread_create(&post.thread, NULL, copyrun_post_work, &post) == 0;
	if (!post.started)
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
		copyrun_post_close(&post);
		if (post.failed)
			snprintf(errbuf, errlen, "%s", post.errmsg);
		copyrun_post_free(&post);
		return false;
	}
	ok = copyrun_post_finish(m, &post, errbuf, errlen) &&
	     copyrun_split(m->copy_tables, ncopy, items, nitems, &res, &split, &busy);
	copyrun_post_free(&post);
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
