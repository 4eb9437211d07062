/*
 * postrun.c — the post-data runner of a direct copy (see postrun.h): each
 * copied table's own post-data restored by pg_restore --use-list while the
 * copy goes on, the rest listed for the Restore phase.
 *
 * Owns: everything in a postrun (postrun_free). Never: starts an index build
 * while every copy worker is busy.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "postrun.h"

/* The list file of table t (-1: the final pass) in the dump directory. */
static void
postrun_list_path(const mig *m, int t, char *path, size_t len)
{
	if (t < 0)
		snprintf(path, len, "%s/postdata-rest.list", m->o.dump_path);
	else
		snprintf(path, len, "%s/postdata-%d.list", m->o.dump_path, t);
}

static bool
postrun_write_list(postrun *pp, int t, const char *path, char *errbuf, size_t errlen)
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
postrun_work(void *arg)
{
	postrun *pp = arg;
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
		postrun_list_path(m, t, path, sizeof(path));
		ok = postrun_write_list(pp, t, path, err, sizeof(err));
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
bool
postrun_table_done(void *arg, int table)
{
	postrun *pp = arg;
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
void
postrun_worker_idle(void *arg)
{
	postrun *pp = arg;

	pthread_mutex_lock(&pp->mu);
	pp->idle++;
	pthread_cond_signal(&pp->cv);
	pthread_mutex_unlock(&pp->mu);
}

/* Which copied table each entry of one table belongs to, asked of the source. */
static bool
postrun_owners(postrun *pp, char *errbuf, size_t errlen)
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
bool
postrun_prepare(postrun *pp, mig *m, int ncopy, char *errbuf, size_t errlen)
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
	return postrun_owners(pp, errbuf, errlen);
}

void
postrun_free(postrun *pp)
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
void
postrun_close(postrun *pp)
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

/* After the copy: the runner joined, the final pass's list written for the Restore phase. */
bool
postrun_finish(mig *m, postrun *pp, char *errbuf, size_t errlen)
{
	postrun_close(pp);
	if (pp->failed)
	{
		snprintf(errbuf, errlen, "%s", pp->errmsg);
		return false;
	}
	postrun_list_path(m, -1, m->postdata_list, sizeof(m->postdata_list));
	if (!postrun_write_list(pp, -1, m->postdata_list, errbuf, errlen))
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
postrun_start(postrun *pp)
{
	pp->started = pthread_create(&pp->thread, NULL, postrun_work, pp) == 0;
	return pp->started;
}
