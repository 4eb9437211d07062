/*
 * cutover.c — the tick of the stream loop: lag and CaughtUp events, the
 * keyless watch, and on Ctrl+C (or --max-runtime-seconds) the cutover's end
 * position, past every commit acknowledged before that moment.
 *
 * Three parts: cutover_decide, a pure function from what the tick sees
 * (signals, clock, cutover state) to a step; the monitor, a thread that runs
 * the queries on the source (the keyless watch and the lag poll, the end
 * position), one job at a time; and cutover_tick, on the apply thread, which
 * asks the monitor for a job, takes its result at a later tick, reports the
 * events and answers the loop with an action (stream.h). So the apply
 * thread never waits for the source; the order stays as it was: the end
 * position is read after the Ctrl+C, no lag is polled once it is asked for.
 *
 * Threads: the monitor owns m->src from cutover_monitor_start to
 * cutover_monitor_stop; a job and its result pass under the monitor's lock,
 * which is never held across a query. Events are reported by the tick only.
 *
 * Owns: the monitor thread. Never: acknowledges anything to the source (the
 * receiver does, from the applier's commits), writes into the loop's
 * options, or reports an event from the monitor thread.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "migrate_internal.h"
#include "termline.h"

/*
 * The end position of a cutover: past the commit record of every source
 * transaction acknowledged to its client before now. The WAL flush position
 * is not: a commit with synchronous_commit = off is acknowledged before its
 * record is flushed. So read the insert position, then commit a transaction
 * of our own that writes WAL (a transactional logical message, which pgoutput
 * does not publish without its messages option) with synchronous_commit =
 * local: its commit flushes WAL past the insert position, so the walsender
 * can send everything below it. Never waits for a synchronous standby.
 * Used by the migration's cutover and by the shadow swap's drain.
 */
bool
cutover_source_end(PGconn *src, const atomic_bool *quitting, pgo_lsn *out, char *errbuf,
                   size_t errlen)
{
	char text[64], flush_text[64];
	pgo_lsn insert, flush = 0;
	bool ok;

	if (!mig_exec(src, "BEGIN", errbuf, errlen))
		return false;
	ok = mig_exec(src, "SET LOCAL synchronous_commit = local", errbuf, errlen) &&
	     mig_value(src, "SELECT pg_catalog.pg_current_wal_insert_lsn()", text, sizeof(text), errbuf,
	               errlen);
	if (ok && !mig_exec(src,
	                    "SELECT pg_catalog.pg_logical_emit_message(true, 'pg_dbmigrator', "
	                    "'cutover')",
	                    errbuf, errlen))
	{
		/* not allowed to this role: the WAL writer flushes by itself, we wait for it below */
		PQclear(PQexec(src, "ROLLBACK"));
		ok = mig_exec(src, "BEGIN", errbuf, errlen);
	}
	if (!ok || !mig_exec(src, "COMMIT", errbuf, errlen))
	{
		PQclear(PQexec(src, "ROLLBACK"));
		return false;
	}
	if (!pgo_lsn_parse(text, &insert))
	{
		snprintf(errbuf, errlen, "the source returned an invalid WAL position \"%s\"", text);
		return false;
	}
	/* flushed up to there (at once after our commit; else within wal_writer_delay) */
	for (int i = 0; i < 300 && flush < insert; i++)
	{
		if (i > 0)
			usleep(100 * 1000);
		if (quitting != NULL && atomic_load(quitting))
		{
			snprintf(errbuf, errlen, "stopped");
			return false;
		}
		if (!mig_value(src, "SELECT pg_catalog.pg_current_wal_flush_lsn()", flush_text,
		               sizeof(flush_text), errbuf, errlen) ||
		    !pgo_lsn_parse(flush_text, &flush))
			return false;
	}
	if (flush < insert)
	{
		snprintf(errbuf, errlen, "the source's WAL was not flushed up to %s within 30 s", text);
		return false;
	}
	*out = insert;
	return true;
}

/* The step for what the tick sees; the order is the order of precedence. */
cutover_step
cutover_decide(const cutover_view *v)
{
	int64_t since;

	if (v->aborted)
		return CUTOVER_ABORT;
	if (!v->cutting_over &&
	    (v->signalled ||
	     (v->max_runtime_secs && v->now_ms - v->start_ms >= (int64_t)v->max_runtime_secs * 1000)))
		return CUTOVER_BEGIN;
	if (v->cutting_over)
	{
		since = v->now_ms - v->cutover_ms;
		if (since > (int64_t)v->cutover_timeout_secs * 1000)
			return CUTOVER_TIMED_OUT;
		/* the tick comes about every 100 ms: this is about once a second */
		return since % 1000 < 100 ? CUTOVER_NUDGE : CUTOVER_NOTHING;
	}
	return v->now_ms < v->next_poll_ms ? CUTOVER_NOTHING : CUTOVER_POLL;
}

/*
 * The poll: the source's WAL flush position, and whether the slot's
 * walsender is its synchronous standby now (pg_stat_replication.sync_state
 * sync or quorum; the tool's own walsender is visible to its role).
 */
static bool
cutover_poll_source(cutover_monitor *mon, cutover_result *r)
{
	const char *params[1] = {mon->slot};
	PGresult *res = PQexecParams(
	    mon->src,
	    "SELECT pg_catalog.pg_current_wal_flush_lsn(), coalesce((SELECT r.sync_state IN "
	    "('sync', 'quorum') FROM pg_catalog.pg_stat_replication r JOIN "
	    "pg_catalog.pg_replication_slots s ON s.active_pid = r.pid WHERE s.slot_name = $1), "
	    "false)",
	    1, NULL, params, NULL, NULL, 0);
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;

	if (ok)
	{
		r->sync_standby = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
		ok = pgo_lsn_parse(PQgetvalue(res, 0, 0), &r->lsn);
	}
	else
		snprintf(r->err, sizeof(r->err), "cannot read the source's WAL position: %s",
		         PQerrorMessage(mon->src));
	PQclear(res);
	return ok;
}

/* Run one job on the source. */
static void
cutover_monitor_run(cutover_monitor *mon, cutover_job job, cutover_result *r)
{
	memset(r, 0, sizeof(*r));
	r->begun_ms = cli_now_ms();
	if (job == CUTOVER_JOB_END)
	{
		/* everything committed on the source before now is applied, then we stop */
		r->ok = cutover_source_end(mon->src, &mon->quitting, &r->lsn, r->err, sizeof(r->err));
		/* tried again at a later tick, on a fresh connection */
		if (!r->ok && !atomic_load(&mon->quitting))
			pgsession_refresh(mon->src, PGSESSION_SOURCE);
		return;
	}
	if (mon->plan->nkeyless > 0 && srcplan_watch(mon->plan, mon->src, r->err, sizeof(r->err)) == 1)
	{
		/* an UPDATE or DELETE the stream cannot carry: stop before any cutover */
		r->halt = true;
		return;
	}
	/* a failed read is no event: the next poll tries again */
	r->ok = cutover_poll_source(mon, r);
}

/* The monitor thread: one job at a time, until cutover_monitor_stop. */
static void *
cutover_monitor_main(void *arg)
{
	cutover_monitor *mon = arg;
	cutover_result r;

	pthread_mutex_lock(&mon->lock);
	for (;;)
	{
		cutover_job job;

		while (!mon->quit && mon->asked == CUTOVER_JOB_NONE)
			pthread_cond_wait(&mon->wake, &mon->lock);
		if (mon->quit)
			break;
		job = mon->asked;
		mon->asked = CUTOVER_JOB_NONE;
		mon->running = job;
		pthread_mutex_unlock(&mon->lock);
		cutover_monitor_run(mon, job, &r);
		pthread_mutex_lock(&mon->lock);
		mon->running = CUTOVER_JOB_NONE;
		mon->done = job;
		mon->result = r;
	}
	pthread_mutex_unlock(&mon->lock);
	return NULL;
}

/* Start the monitor on m->src. */
bool
cutover_monitor_start(cutover_monitor *mon, mig *m, char *errbuf, size_t errlen)
{
	int rc;

	memset(mon, 0, sizeof(*mon));
	mon->src = m->src;
	mon->plan = &m->plan;
	mon->slot = m->o.slot;
	atomic_init(&mon->quitting, false);
	pthread_mutex_init(&mon->lock, NULL);
	pthread_cond_init(&mon->wake, NULL);
	rc = pthread_create(&mon->thread, NULL, cutover_monitor_main, mon);
	if (rc != 0)
	{
		snprintf(errbuf, errlen, "could not start the source monitor thread: %s", strerror(rc));
		pthread_cond_destroy(&mon->wake);
		pthread_mutex_destroy(&mon->lock);
		return false;
	}
	mon->started = true;
	m->monitor = mon;
	return true;
}

/* Stop the monitor and wait for it; m->src is the caller's again. */
void
cutover_monitor_stop(cutover_monitor *mon, mig *m)
{
	if (!mon->started)
		return;
	pthread_mutex_lock(&mon->lock);
	mon->quit = true;
	atomic_store(&mon->quitting, true);
	pthread_cond_signal(&mon->wake);
	pthread_mutex_unlock(&mon->lock);
	pthread_join(mon->thread, NULL);
	termline_clear(); /* the streaming status line ends with the stream */
	pthread_cond_destroy(&mon->wake);
	pthread_mutex_destroy(&mon->lock);
	mon->started = false;
	m->monitor = NULL;
}

/* Ask for a job; false when one is asked, running or not yet taken. */
static bool
cutover_monitor_ask(cutover_monitor *mon, cutover_job job)
{
	bool idle;

	pthread_mutex_lock(&mon->lock);
	idle = mon->asked == CUTOVER_JOB_NONE && mon->running == CUTOVER_JOB_NONE &&
	       mon->done == CUTOVER_JOB_NONE;
	if (idle)
	{
		mon->asked = job;
		pthread_cond_signal(&mon->wake);
	}
	pthread_mutex_unlock(&mon->lock);
	return idle;
}

/* Take the result of a finished job into r; CUTOVER_JOB_NONE when there is none. */
static cutover_job
cutover_monitor_take(cutover_monitor *mon, cutover_result *r)
{
	cutover_job job;

	pthread_mutex_lock(&mon->lock);
	job = mon->done;
	if (job != CUTOVER_JOB_NONE)
	{
		*r = mon->result;
		mon->done = CUTOVER_JOB_NONE;
	}
	pthread_mutex_unlock(&mon->lock);
	return job;
}

/* The end position is read (r): stream up to it. */
static void
cutover_begin(mig *m, const cutover_result *r)
{
	char text[PGO_LSN_STRLEN];

	m->cutover = true;
	m->cutover_ms = r->begun_ms;
	m->cutover_lsn = r->lsn;
	receiver_request_reply(m->rcv);
	event_say("Cutover", "info",
	          "%s: applying everything up to the source's WAL position %s, then cutting over "
	          "(Ctrl+C again aborts)",
	          mig_signals ? "interrupt" : "--max-runtime-seconds reached",
	          pgo_lsn_format(r->lsn, text));
}

/*
 * The streaming status line (issue 19): on a terminal, one line redrawn
 * about every second (lag in bytes and seconds, row changes a second, what
 * is being applied) stands in for the Lag lines; not with --json or
 * --verbose, nor in a whole-server child, whose lines would mix with its
 * siblings'. File-static: one stream runs per process, on the apply thread.
 */
typedef struct cutover_watch
{
	pgo_lsn source_lsn;     /* the last lag poll's position of the source (0: none yet) */
	int64_t drawn_ms;       /* when the line was last drawn (0: never) */
	uint64_t drawn_changes; /* row changes applied by then */
} cutover_watch;

static cutover_watch cutover_watching;

#define CUTOVER_DRAW_MS 1000

/* Whether this run shows the status line rather than Lag lines. */
static bool
cutover_status_line(const mig *m)
{
	return !m->o.json && !m->o.verbose && m->o.event_tag == NULL && termline_wanted();
}

/* bytes as "512 B", "12.3 kB", "4.0 MB" or "1.2 GB". */
static const char *
cutover_size(long long bytes, char *buf, size_t size)
{
	if (bytes < 1024)
		snprintf(buf, size, "%lld B", bytes);
	else if (bytes < 1024 * 1024)
		snprintf(buf, size, "%.1f kB", (double)bytes / 1024.0);
	else if (bytes < 1024LL * 1024 * 1024)
		snprintf(buf, size, "%.1f MB", (double)bytes / 1048576.0);
	else
		snprintf(buf, size, "%.1f GB", (double)bytes / 1073741824.0);
	return buf;
}

/* What the applier is at, for the status line. */
static const char *
cutover_applying(const applier *a, char *buf, size_t size)
{
	char lsn[PGO_LSN_STRLEN];

	if (a->copy_rel)
	{
		snprintf(buf, size, "applying %s.%s (COPY of %llu inserts)", a->copy_rel->nspname,
		         a->copy_rel->relname, (unsigned long long)a->copy_rows);
		return buf;
	}
	if (!a->in_txn)
		return "waiting for changes";
	if (a->skipping)
	{
		snprintf(buf, size, "skipping the transaction at %s (applied before)",
		         pgo_lsn_format(a->txn_lsn, lsn));
		return buf;
	}
	for (int i = 0; i < APPLY_MAX_BATCHES; i++)
		if (a->batches[i].rel)
		{
			snprintf(buf, size, "applying %s.%s (transaction at %s)", a->batches[i].rel->nspname,
			         a->batches[i].rel->relname, pgo_lsn_format(a->txn_lsn, lsn));
			return buf;
		}
	snprintf(buf, size, "applying the transaction at %s", pgo_lsn_format(a->txn_lsn, lsn));
	return buf;
}

/* Lag in bytes: how far what the target keeps is behind the source's position. */
static long long
cutover_lag_bytes(pgo_lsn source, pgo_lsn applied)
{
	return source > applied ? (long long)(source - applied) : 0;
}

/* Lag in seconds, roughly: how old the last commit seen is, while changes wait. */
static double
cutover_lag_seconds(const applier *a, bool waiting)
{
	double secs = 0;

	if (waiting && a->last_commit_time > 0)
		secs = (double)(replconn_now() - a->last_commit_time) / 1e6;
	return secs < 0 ? 0 : secs;
}

/*
 * The Lag event: the source's position, what was received and what the
 * target keeps; with sql (the catch-up's statistics), between the SQL
 * catch-up's chunks, which receive nothing but what they apply.
 */
static void
cutover_lag_event(const applier *a, pgo_lsn source, pgo_lsn received, pgo_lsn applied,
                  const catchup_stats *sql)
{
	long long lag = cutover_lag_bytes(source, applied);
	char l[PGO_LSN_STRLEN];
	event e;

	event_begin(&e, "Lag");
	event_int(&e, "lag_bytes", lag);
	/* how old the oldest change not yet applied is, roughly: the last commit seen */
	event_num(&e, "lag_seconds", cutover_lag_seconds(a, sql ? lag > 0 : received > applied));
	event_str(&e, "source_lsn", pgo_lsn_format(source, l));
	if (!sql)
		event_str(&e, "received_lsn", pgo_lsn_format(received, l));
	event_str(&e, "applied_lsn", pgo_lsn_format(applied, l));
	event_int(&e, "row_changes", (int64_t)(a->stats.inserts + a->stats.updates + a->stats.deletes));
	event_int(&e, "transactions", (int64_t)a->stats.txns);
	if (!sql)
	{
		event_end(&e, "replication lag %lld bytes", lag);
		return;
	}
	event_str(&e, "through", "sql");
	event_int(&e, "chunks", (int64_t)sql->chunks);
	event_end(
	    &e, "replication lag %lld bytes (the backlog through SQL: %.1f MB in %llu chunk%s so far)",
	    lag, (double)sql->bytes / (1024.0 * 1024.0), (unsigned long long)sql->chunks,
	    sql->chunks == 1 ? "" : "s");
}

/* Redraw the status line when a second has passed since the last time. */
static void
cutover_draw_status(mig *m, int64_t now_ms)
{
	cutover_watch *w = &cutover_watching;
	pgo_lsn applied, received, source;
	uint64_t changes;
	double rate;
	char lag[32], what[320];

	if (now_ms - w->drawn_ms < CUTOVER_DRAW_MS || !cutover_status_line(m))
		return;
	applied = receiver_flush_lsn(m->rcv);
	received = atomic_load(&m->rcv->received_lsn);
	/* the source is at least where the stream has come to since the last poll */
	source = w->source_lsn > received ? w->source_lsn : received;
	changes = m->app->stats.inserts + m->app->stats.updates + m->app->stats.deletes;
	rate = w->drawn_ms && now_ms > w->drawn_ms && changes >= w->drawn_changes
	           ? (double)(changes - w->drawn_changes) * 1000.0 / (double)(now_ms - w->drawn_ms)
	           : 0;
	termline_draw(
	    "%s lag %s, %.1f s | %.0f row changes/s, %llu applied | %s%s",
	    m->cutover     ? "Cutting over:"
	    : m->caught_up ? "Streaming (caught up):"
	                   : "Streaming:",
	    w->source_lsn ? cutover_size(cutover_lag_bytes(source, applied), lag, sizeof(lag)) : "?",
	    cutover_lag_seconds(m->app, received > applied), rate, (unsigned long long)changes,
	    cutover_applying(m->app, what, sizeof(what)), m->cutover ? "" : " | Ctrl+C cuts over");
	w->drawn_ms = now_ms;
	w->drawn_changes = changes;
}

/* The Lag event for the source's position flush, and CaughtUp the first time it is small. */
static void
cutover_report_lag(mig *m, pgo_lsn flush)
{
	pgo_lsn applied = receiver_flush_lsn(m->rcv);
	long long lag = cutover_lag_bytes(flush, applied);
	event e;

	cutover_watching.source_lsn = flush;
	/* on a terminal the status line shows the lag (cutover_draw_status): no Lag lines there */
	if (!cutover_status_line(m))
		cutover_lag_event(m->app, flush, atomic_load(&m->rcv->received_lsn), applied, NULL);
	if (!m->caught_up && lag <= m->o.lag_threshold)
	{
		m->caught_up = true;
		event_begin(&e, "CaughtUp");
		event_int(&e, "lag_bytes", lag);
		event_end(&e, "the target caught up (lag %lld bytes <= %lld): press Ctrl+C to cut over",
		          lag, m->o.lag_threshold);
	}
}

void
cutover_catch_up_lag(const mig *m, const applier *a, pgo_lsn source, pgo_lsn applied,
                     const catchup_stats *st)
{
	char lag[32];

	if (!cutover_status_line(m))
	{
		cutover_lag_event(a, source, 0, applied, st);
		return;
	}
	termline_draw("Catching up through SQL: lag %s | %llu row changes applied, %llu chunk%s | "
	              "Ctrl+C cuts over",
	              cutover_size(cutover_lag_bytes(source, applied), lag, sizeof(lag)),
	              (unsigned long long)(a->stats.inserts + a->stats.updates + a->stats.deletes),
	              (unsigned long long)st->chunks, st->chunks == 1 ? "" : "s");
}

/*
 * Called from the stream loop about every 100 ms: lag events, cutover,
 * limits. It never waits for the source: it asks the monitor for a query
 * and acts on the answer at a later tick.
 */
stream_action
cutover_tick(void *arg, pgo_lsn *endpos)
{
	mig *m = arg;
	cutover_result r = {0};
	cutover_job took = cutover_monitor_take(m->monitor, &r);
	cutover_view v = {
	    .signalled = mig_signals != 0,
	    .aborted = mig_abort != 0,
	    .now_ms = cli_now_ms(),
	    .start_ms = m->start_ms,
	    .max_runtime_secs = m->o.max_runtime,
	    .cutting_over = m->cutover,
	    .cutover_ms = m->cutover_ms,
	    .cutover_timeout_secs = m->o.cutover_timeout,
	    .next_poll_ms = m->next_poll_ms,
	};
	cutover_step step = cutover_decide(&v);

	if (step != CUTOVER_ABORT && took == CUTOVER_JOB_POLL && r.halt)
	{
		snprintf(m->halt_msg, sizeof(m->halt_msg), "%s", r.err);
		m->restart = true;
		return STREAM_STOP;
	}
	/*
	 * Jobs run one at a time and the end position is asked for only once the
	 * last poll's result is taken: no poll result arrives during the cutover.
	 */
	if (took == CUTOVER_JOB_POLL && r.ok)
	{
		cutover_report_lag(m, r.lsn);
		/* --synchronous-commit not given: a source waiting for us gets each commit at once */
		if (m->o.synchronous_commit == -1 && m->app && m->app->source_waits != r.sync_standby)
		{
			m->app->source_waits = r.sync_standby;
			event_say("StreamApply", "info",
			          r.sync_standby
			              ? "the source now waits for this migration as its synchronous standby: "
			                "every target commit waits for the target's disk and is reported at "
			                "once"
			              : "the source no longer waits for this migration: target commits are "
			                "asynchronous again (one in 0.2 s waits for the disk)");
		}
	}
	cutover_draw_status(m, v.now_ms);
	switch (step)
	{
		case CUTOVER_NOTHING:
			return STREAM_GO_ON;
		case CUTOVER_ABORT:
			return STREAM_STOP; /* follow_run: neither restart nor timed_out, so aborted */
		case CUTOVER_BEGIN:
			if (took == CUTOVER_JOB_END && r.ok)
			{
				cutover_begin(m, &r);
				*endpos = r.lsn;
				return STREAM_SET_ENDPOS;
			}
			if (took == CUTOVER_JOB_END)
				/* the monitor refreshed its connection: asked again at the next tick */
				event_say("Cutover", "warning", "cannot read the source's WAL position: %s", r.err);
			else
				(void)cutover_monitor_ask(m->monitor, CUTOVER_JOB_END);
			return STREAM_GO_ON;
		case CUTOVER_TIMED_OUT:
			m->timed_out = true;
			return STREAM_STOP;
		case CUTOVER_NUDGE:
			receiver_request_reply(m->rcv);
			return STREAM_GO_ON;
		case CUTOVER_POLL:
			if (cutover_monitor_ask(m->monitor, CUTOVER_JOB_POLL))
				m->next_poll_ms = v.now_ms + (int64_t)m->o.poll_secs * 1000;
			return STREAM_GO_ON;
	}
	return STREAM_GO_ON;
}
