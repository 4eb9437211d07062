/*
 * cutover.c — the tick of the stream loop: lag and CaughtUp events, the
 * keyless watch, and on Ctrl+C (or --max-runtime-seconds) the cutover's end
 * position, past every commit acknowledged before that moment.
 *
 * Split in two: cutover_decide, a pure function from what the tick sees
 * (signals, clock, cutover state) to a step, and cutover_tick, which runs
 * the step's queries on the source and answers the loop with an action
 * (stream.h). The queries still run on the apply thread, between messages.
 *
 * Owns: nothing. Never: acknowledges anything to the source (the receiver
 * does, from the applier's commits), or writes into the loop's options.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "migrate_internal.h"

/*
 * The end position of a cutover: past the commit record of every source
 * transaction acknowledged to its client before now. The WAL flush position
 * is not: a commit with synchronous_commit = off is acknowledged before its
 * record is flushed. So read the insert position, then commit a transaction
 * of our own that writes WAL (a transactional logical message, which pgoutput
 * does not publish without its messages option) with synchronous_commit =
 * local: its commit flushes WAL past the insert position, so the walsender
 * can send everything below it. Never waits for a synchronous standby.
 */
static bool
cutover_end_position(mig *m, pgo_lsn *out, char *errbuf, size_t errlen)
{
	char text[64], flush_text[64];
	pgo_lsn insert, flush = 0;
	bool ok;

	if (!mig_exec(m->src, "BEGIN", errbuf, errlen))
		return false;
	ok = mig_exec(m->src, "SET LOCAL synchronous_commit = local", errbuf, errlen) &&
	     mig_value(m->src, "SELECT pg_catalog.pg_current_wal_insert_lsn()", text, sizeof(text),
	               errbuf, errlen);
	if (ok && !mig_exec(m->src,
	                    "SELECT pg_catalog.pg_logical_emit_message(true, 'pg_dbmigrator', "
	                    "'cutover')",
	                    errbuf, errlen))
	{
		/* not allowed to this role: the WAL writer flushes by itself, we wait for it below */
		PQclear(PQexec(m->src, "ROLLBACK"));
		ok = mig_exec(m->src, "BEGIN", errbuf, errlen);
	}
	if (!ok || !mig_exec(m->src, "COMMIT", errbuf, errlen))
	{
		PQclear(PQexec(m->src, "ROLLBACK"));
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
		if (!mig_value(m->src, "SELECT pg_catalog.pg_current_wal_flush_lsn()", flush_text,
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

/* Read the end position and stream up to it; false (and a warning) to try again. */
static bool
cutover_begin(mig *m, int64_t now, pgo_lsn *endpos)
{
	char err[512], text[PGO_LSN_STRLEN];
	pgo_lsn end;

	/* everything committed on the source before now is applied, then we stop */
	if (!cutover_end_position(m, &end, err, sizeof(err)))
	{
		/* tried again at the next tick, on a fresh connection */
		event_say("Cutover", "warning", "cannot read the source's WAL position: %s", err);
		pgsession_refresh(m->src, PGSESSION_SOURCE);
		return false;
	}
	m->cutover = true;
	m->cutover_ms = now;
	m->cutover_lsn = end;
	*endpos = end;
	receiver_request_reply(m->rcv);
	event_say("Cutover", "info",
	          "%s: applying everything up to the source's WAL position %s, then cutting over "
	          "(Ctrl+C again aborts)",
	          mig_signals ? "interrupt" : "--max-runtime-seconds reached",
	          pgo_lsn_format(end, text));
	return true;
}

/* The Lag event for the source's position flush, and CaughtUp the first time it is small. */
static void
cutover_report_lag(mig *m, pgo_lsn flush)
{
	pgo_lsn applied = receiver_flush_lsn(m->rcv);
	pgo_lsn received = atomic_load(&m->rcv->received_lsn);
	long long lag = flush > applied ? (long long)(flush - applied) : 0;
	double lag_secs = 0;
	char a[PGO_LSN_STRLEN], r[PGO_LSN_STRLEN], f[PGO_LSN_STRLEN];
	event e;

	/* how old the oldest change not yet applied is, roughly: the last commit seen */
	if (received > applied && m->app->last_commit_time > 0)
		lag_secs = (double)(replconn_now() - m->app->last_commit_time) / 1e6;
	if (lag_secs < 0)
		lag_secs = 0;
	event_begin(&e, "Lag");
	event_int(&e, "lag_bytes", lag);
	event_num(&e, "lag_seconds", lag_secs);
	event_str(&e, "source_lsn", pgo_lsn_format(flush, f));
	event_str(&e, "received_lsn", pgo_lsn_format(received, r));
	event_str(&e, "applied_lsn", pgo_lsn_format(applied, a));
	event_int(&e, "row_changes",
	          (int64_t)(m->app->stats.inserts + m->app->stats.updates + m->app->stats.deletes));
	event_int(&e, "transactions", (int64_t)m->app->stats.txns);
	event_end(&e, "replication lag %lld bytes", lag);
	if (!m->caught_up && lag <= m->o.lag_threshold)
	{
		m->caught_up = true;
		event_begin(&e, "CaughtUp");
		event_int(&e, "lag_bytes", lag);
		event_end(&e, "the target caught up (lag %lld bytes <= %lld): press Ctrl+C to cut over",
		          lag, m->o.lag_threshold);
	}
}

/* The keyless watch, then the lag; false when the stream must halt (m->halt_msg). */
static bool
cutover_poll(mig *m, int64_t now)
{
	char flush_text[64], err[512];
	pgo_lsn flush = 0;

	m->next_poll_ms = now + (int64_t)m->o.poll_secs * 1000;
	if (m->plan.nkeyless > 0 && srcplan_watch(&m->plan, m->src, err, sizeof(err)) == 1)
	{
		/* an UPDATE or DELETE the stream cannot carry: stop before any cutover */
		snprintf(m->halt_msg, sizeof(m->halt_msg), "%s", err);
		m->restart = true;
		return false;
	}
	/* a failed read is no event: the next poll tries again */
	if (mig_value(m->src, "SELECT pg_current_wal_flush_lsn()", flush_text, sizeof(flush_text), err,
	              sizeof(err)) &&
	    pgo_lsn_parse(flush_text, &flush))
		cutover_report_lag(m, flush);
	return true;
}

/* Called from the stream loop about every 100 ms: lag events, cutover, limits. */
stream_action
cutover_tick(void *arg, pgo_lsn *endpos)
{
	mig *m = arg;
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

	switch (cutover_decide(&v))
	{
		case CUTOVER_NOTHING:
			return STREAM_GO_ON;
		case CUTOVER_ABORT:
			return STREAM_STOP; /* follow_run: neither restart nor timed_out, so aborted */
		case CUTOVER_BEGIN:
			return cutover_begin(m, v.now_ms, endpos) ? STREAM_SET_ENDPOS : STREAM_GO_ON;
		case CUTOVER_TIMED_OUT:
			m->timed_out = true;
			return STREAM_STOP;
		case CUTOVER_NUDGE:
			receiver_request_reply(m->rcv);
			return STREAM_GO_ON;
		case CUTOVER_POLL:
			return cutover_poll(m, v.now_ms) ? STREAM_GO_ON : STREAM_STOP;
	}
	return STREAM_GO_ON;
}
