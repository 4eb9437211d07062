/*
 * shadowstream.c — the source's changes streamed into the shadow tables
 * (see shadowstream.h): the publication and slot on the source, and the
 * online migration's pipeline run with the applier's schema mapping.
 *
 * The stream reads as its story: open the applier on the target (its
 * progress row says where the shadow is), START_REPLICATION from there,
 * stream_apply until stopped or drained, a final status update. A lost
 * connection ends the call (shstream_result.retryable); the next one (the
 * streaming prepare's retry, the swap's drain) starts again from the slot and
 * the progress row.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "events.h"
#include "migrate_internal.h"
#include "pgsession.h"
#include "pipeline.h"
#include "shadowsql.h"
#include "shadowstream.h"
#include "srcplan.h"
#include "strbuf.h"

#define SHS_RING_SIZE      (16 * 1024 * 1024)
#define SHS_LAG_EVERY_MS   5000
#define SHS_REPLY_EVERY_MS 200

void
shstream_name(const char *ts, char *buf, size_t size)
{
	snprintf(buf, size, "pgdbm_shadow_%s", ts);
}

/* A plain session on the source (synchronous_commit local: never waits for us). */
static PGconn *
shs_connect(const char *source, char *errbuf, size_t errlen)
{
	pgsession_opts so = {source, PGSESSION_SOURCE, NULL, "10"};
	char why[1024];
	PGconn *c = pgsession_open(&so, why, sizeof(why));

	if (c == NULL)
		snprintf(errbuf, errlen, "cannot connect to the source: %s", why);
	return c;
}

/* Run sql with params; false with the server's message after what. */
static bool
shs_exec(PGconn *c, const char *sql, int n, const char *const *params, const char *what,
         char *errbuf, size_t errlen)
{
	PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;

	if (!ok)
		snprintf(errbuf, errlen, "%s: %s", what, PQerrorMessage(c));
	PQclear(r);
	return ok;
}

/* Drop the slot (when no walsender holds it) and the publication, on c. */
static bool
shs_drop_on(PGconn *c, const char *name, char *errbuf, size_t errlen)
{
	const char *p[1] = {name};
	char *q = PQescapeIdentifier(c, name, strlen(name));
	char sql[256];
	bool ok;

	if (q == NULL)
	{
		snprintf(errbuf, errlen, "cannot quote the name %s", name);
		return false;
	}
	snprintf(sql, sizeof(sql), "DROP PUBLICATION IF EXISTS %s", q);
	PQfreemem(q);
	ok = shs_exec(c,
	              "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
	              "WHERE slot_name = $1",
	              1, p, "cannot drop the replication slot on the source", errbuf, errlen) &&
	     shs_exec(c, sql, 0, NULL, "cannot drop the publication on the source", errbuf, errlen);
	return ok;
}

/* shs_drop_on, again for up to 10 s: a walsender that is just ending lets go of the slot soon */
static bool
shs_drop_retrying(PGconn *c, const char *name, char *errbuf, size_t errlen)
{
	bool ok = false;

	for (int i = 0; i < 50 && !ok; i++)
	{
		ok = shs_drop_on(c, name, errbuf, errlen);
		if (!ok)
			usleep(200 * 1000);
	}
	return ok;
}

bool
shstream_drop(const char *source, const char *name, char *errbuf, size_t errlen)
{
	PGconn *c = shs_connect(source, errbuf, errlen);
	bool ok;

	if (c == NULL)
		return false;
	ok = shs_drop_retrying(c, name, errbuf, errlen);
	PQfinish(c);
	return ok;
}

/*
 * None of the tables lacks a replica identity: a publication of such a table
 * publishes updates and deletes, so the application's UPDATE and DELETE of
 * it on the source would fail while it exists. Refused before anything is
 * created, naming the tables and what to do.
 */
static bool
shs_no_keyless(PGconn *src, const char *schema, const char *const *tables, int n, char *errbuf,
               size_t errlen)
{
	strbuf arr;
	PGresult *r;
	const char *p[2] = {schema, NULL};
	bool ok;

	strbuf_init(&arr);
	if (!shadowsql_array_literal(&arr, tables, n))
	{
		strbuf_free(&arr);
		snprintf(errbuf, errlen, "out of memory");
		return false;
	}
	p[1] = strbuf_data(&arr);
	r = PQexecParams(src,
	                 "SELECT string_agg(pg_catalog.format('%I.%I', n.nspname, c.relname), ', ' "
	                 "ORDER BY c.relname) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace "
	                 "n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = "
	                 "ANY ($2::text[]) AND c.relkind = 'r' AND " SRCPLAN_KEYLESS_SQL,
	                 2, NULL, p, NULL, NULL, 0);
	strbuf_free(&arr);
	ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
	if (!ok)
		snprintf(errbuf, errlen, "cannot read the tables' replica identity on the source: %s",
		         PQerrorMessage(src));
	else if (!PQgetisnull(r, 0, 0))
	{
		snprintf(errbuf, errlen,
		         "%s: no primary key or replica identity on the source, so publishing it would "
		         "make the application's UPDATE and DELETE of it fail; give it a primary key or "
		         "run ALTER TABLE ... REPLICA IDENTITY FULL on the source, name it in "
		         "--preserved-tables, or prepare without --online",
		         PQgetvalue(r, 0, 0));
		ok = false;
	}
	PQclear(r);
	return ok;
}

bool
shstream_create(const char *source, PGconn *src, const char *name, const char *schema,
                const char *const *tables, int n, replconn *rc, replslot *out, char *errbuf,
                size_t errlen)
{
	const char *pubs[2] = {name, NULL};
	char *q;
	strbuf sql;
	bool ok;

	/* a killed prepare of this migration left them: they are ours, by name */
	if (!shs_drop_retrying(src, name, errbuf, errlen))
		return false;
	/* before the publication: one of a keyless table would fail the application's updates */
	if (!shs_no_keyless(src, schema, tables, n, errbuf, errlen))
		return false;
	strbuf_init(&sql);
	q = PQescapeIdentifier(src, name, strlen(name));
	ok = q && strbuf_appendf(&sql, "CREATE PUBLICATION %s", q);
	PQfreemem(q);
	for (int i = 0; ok && i < n; i++)
	{
		char *qs = PQescapeIdentifier(src, schema, strlen(schema));
		char *qt = PQescapeIdentifier(src, tables[i], strlen(tables[i]));

		ok = qs && qt && strbuf_appendf(&sql, "%s%s.%s", i ? ", " : " FOR TABLE ", qs, qt);
		PQfreemem(qs);
		PQfreemem(qt);
	}
	/*
	 * a ShareUpdateExclusive lock per table: the application's writes do not
	 * wait for it; a DDL holding one makes us give up, not queue
	 */
	ok = ok && shs_exec(src, "SET lock_timeout = '5s'", 0, NULL, "cannot set lock_timeout", errbuf,
	                    errlen);
	if (ok && !shs_exec(src, strbuf_data(&sql), 0, NULL,
	                    "cannot create the publication on the source (the source role must "
	                    "own the tables)",
	                    errbuf, errlen))
		ok = false;
	strbuf_free(&sql);
	if (!ok)
		return false;
	if (!replconn_open(rc, source, errbuf, errlen))
		goto undo;
	if (!replconn_check_identity(rc, pubs, errbuf, errlen) ||
	    !replconn_create_slot(rc, name, false, out, errbuf, errlen))
		goto undo;
	return true;
undo:
	replconn_close(rc);
	{
		char err2[512];

		(void)shs_drop_on(src, name, err2, sizeof(err2));
	}
	return false;
}

bool
shstream_wait_free(const char *source, const char *name, int seconds, bool *active, char *errbuf,
                   size_t errlen)
{
	PGconn *c = shs_connect(source, errbuf, errlen);
	const char *p[1] = {name};
	bool ok = c != NULL;

	*active = false;
	for (int i = 0; ok && i <= seconds * 5; i++)
	{
		PGresult *r =
		    PQexecParams(c, "SELECT active FROM pg_replication_slots WHERE slot_name = $1", 1, NULL,
		                 p, NULL, NULL, 0);

		ok = PQresultStatus(r) == PGRES_TUPLES_OK;
		if (!ok)
			snprintf(errbuf, errlen, "cannot read the source's replication slots: %s",
			         PQerrorMessage(c));
		*active = ok && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
		PQclear(r);
		if (!ok || !*active)
			break;
		usleep(200 * 1000);
	}
	PQfinish(c);
	return ok;
}

bool
shstream_lag(PGconn *src, const char *name, long long *bytes, char *errbuf, size_t errlen)
{
	const char *p[1] = {name};
	PGresult *r = PQexecParams(src,
	                           "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)"
	                           "::bigint FROM pg_replication_slots WHERE slot_name = $1",
	                           1, NULL, p, NULL, NULL, 0);
	bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0);

	if (ok)
		*bytes = atoll(PQgetvalue(r, 0, 0));
	else
		snprintf(errbuf, errlen, "the slot %s is not on the source (or unreadable): %s", name,
		         PQerrorMessage(src));
	PQclear(r);
	return ok;
}

/* ---- the stream ---- */

/* What the tick sees: the pipeline, and when it last spoke. */
typedef struct shs_tick_state
{
	pipeline *pl;
	const shstream_opts *o;
	int64_t last_lag_ms, last_reply_ms;
} shs_tick_state;

/* The lag event: how far behind the source the shadow is. */
static void
shs_report_lag(const pipeline *pl)
{
	event e;
	char a[PGO_LSN_STRLEN], w[PGO_LSN_STRLEN];
	pgo_lsn wal_end = atomic_load(&((pipeline *)pl)->rcv.server_wal_end);
	pgo_lsn applied = pl->app.committed_lsn;
	long long lag = wal_end > applied ? (long long)(wal_end - applied) : 0;

	event_begin(&e, "ShadowLag");
	event_str(&e, "applied_lsn", pgo_lsn_format(applied, a));
	event_str(&e, "source_lsn", pgo_lsn_format(wal_end, w));
	event_int(&e, "lag_bytes", lag);
	event_int(&e, "transactions", (int64_t)pl->app.stats.txns);
	event_int(&e, "row_changes",
	          (int64_t)(pl->app.stats.inserts + pl->app.stats.updates + pl->app.stats.deletes));
	event_end(&e, "streaming into the shadow: %lld bytes behind the source", lag);
}

/* Every ~100 ms on the apply thread: a lag event now and then; a drain asks for keepalives. */
static stream_action
shs_tick(void *arg, pgo_lsn *endpos)
{
	shs_tick_state *t = arg;
	int64_t now = cli_now_ms();

	(void)endpos;
	/* the server's WAL end comes with a keepalive: a quiet source must still reach endpos */
	if (t->o->drain && now - t->last_reply_ms >= SHS_REPLY_EVERY_MS)
	{
		t->last_reply_ms = now;
		receiver_request_reply(&t->pl->rcv);
	}
	if (now - t->last_lag_ms >= SHS_LAG_EVERY_MS)
	{
		t->last_lag_ms = now;
		shs_report_lag(t->pl);
	}
	return STREAM_GO_ON;
}

/*
 * Where a drain ends: past every source commit acknowledged before the swap
 * began, asynchronous commits included (the cutover's rule, cutover_source_end;
 * pg_current_wal_lsn() is the write position, behind an unwritten async commit).
 */
static bool
shs_drain_end(const char *source, pgo_lsn *lsn, char *errbuf, size_t errlen)
{
	PGconn *c = shs_connect(source, errbuf, errlen);
	bool ok;

	if (c == NULL)
		return false;
	ok = cutover_source_end(c, NULL, lsn, errbuf, errlen);
	PQfinish(c);
	return ok;
}

bool
shstream_run(const shstream_opts *o, replconn *rc, shstream_result *res, char *errbuf,
             size_t errlen)
{
	static pipeline pl; /* big: the decoder's column storage */
	const char *pubs[2] = {o->name, NULL};
	apply_opts ao = {0};
	replstart start = {0};
	shs_tick_state ts = {.pl = &pl, .o = o};
	stream_opts so = {.stop = o->stop, .tick = shs_tick, .tick_arg = &ts};
	stream_end end;
	char lsn[PGO_LSN_STRLEN];
	bool ok = false;

	memset(res, 0, sizeof(*res));
	errbuf[0] = '\0';
	if (o->drain && !shs_drain_end(o->source, &res->endpos, errbuf, errlen))
	{
		replconn_close(rc);
		return false;
	}
	so.endpos = res->endpos;
	ao.target = o->dest;
	ao.slot_name = o->name;
	ao.group_txns = 100;
	ao.group_bytes = 8 * 1024 * 1024;
	ao.source_system = o->source_system;
	ao.run_lsn = o->run_lsn;
	ao.resuming = o->resuming;
	ao.target_schema = o->shadow_schema;
	/* the shadow tables have no triggers and no foreign keys (LIKE copies none) */
	ao.guarded = true;
	if (!pipeline_init(&pl, apply_rel_free, errbuf, errlen))
		goto done;
	/* a server away (restarting, the network) may be back later: the caller may try again */
	res->retryable = true;
	if (!pipeline_open_applier(&pl, &ao, errbuf, errlen))
		goto done;
	if (pl.app.progress_note[0])
		event_say("ShadowStream", "warning", "%s", pl.app.progress_note);
	if (rc->conn == NULL && !replconn_open(rc, o->source, errbuf, errlen))
		goto done;
	if (!pipeline_prepare(&pl, SHS_RING_SIZE, replconn_max_proto_version(rc->server_version),
	                      errbuf, errlen))
		goto done;
	start.slot = o->name;
	start.start_lsn = pl.app.progress_lsn > o->run_lsn ? pl.app.progress_lsn : o->run_lsn;
	start.publications = pubs;
	if (!pipeline_stream(&pl, rc, &start, 10000, 60000, errbuf, errlen))
	{
		if (rc->slot_busy)
			snprintf(errbuf + strlen(errbuf), errlen - strlen(errbuf),
			         " (another process streams from the slot %s: stop it first)", o->name);
		res->retryable = !rc->slot_busy;
		goto done;
	}
	ts.last_lag_ms = ts.last_reply_ms = cli_now_ms();
	event_say("ShadowStream", "info", "streaming from slot %s into schema %s from %s%s", o->name,
	          o->shadow_schema, pgo_lsn_format(start.start_lsn, lsn),
	          o->drain ? " up to the source's current position" : " (Ctrl+C stops)");
	if (o->drain)
		receiver_request_reply(&pl.rcv);
	end = pipeline_apply(&pl, &so, errbuf, errlen);
	/* a lost connection to either server may heal; a bad message or a refused change not */
	res->retryable = end == STREAM_CLOSED   ? !(pl.rcv.failed && pl.rcv.fatal)
	                 : end == STREAM_FAILED ? apply_lost_target(&pl.app)
	                                        : false;
	res->applied_lsn =
	    pl.app.committed_lsn > start.start_lsn ? pl.app.committed_lsn : start.start_lsn;
	res->txns = pl.app.stats.txns;
	res->changes =
	    pl.app.stats.inserts + pl.app.stats.updates + pl.app.stats.deletes + pl.app.stats.truncates;
	if (end == STREAM_ENDPOS || (end == STREAM_STOPPED && !o->drain))
		ok = pipeline_stop(&pl, errbuf, errlen);
	else if (end == STREAM_STOPPED)
		snprintf(errbuf, errlen, "interrupted before the drain reached %s",
		         pgo_lsn_format(res->endpos, lsn));
	else if (errbuf[0] == '\0')
		snprintf(errbuf, errlen, "the source ended the replication stream");
	if (ok)
		shs_report_lag(&pl);
done:
	pipeline_close(&pl, rc, ok ? NULL : errbuf, errlen);
	return ok;
}
