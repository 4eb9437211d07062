/*
 * cutover.c — the tick of the stream loop: lag and CaughtUp events, the
 * keyless watch, and on Ctrl+C (or --max-runtime-seconds) the cutover's end
 * position, past every commit acknowledged before that moment.
 *
 * Owns: nothing. Never: acknowledges anything to the source (the receiver
 * does, from the applier's commits).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

/* Called from the stream loop about every 100 ms: lag events, cutover, limits. */
void
cutover_tick(void *arg)
{
	mig *m = arg;
	int64_t now = cli_now_ms();
	char flush_text[64], err[512];
	pgo_lsn flush = 0, applied, received;
	char a[PGO_LSN_STRLEN], r[PGO_LSN_STRLEN], f[PGO_LSN_STRLEN];

	if (mig_abort)
	{
		m->so->stop = &mig_abort;
		return;
	}
	if (!m->cutover && (mig_signals || (m->o.max_runtime &&
	                                    now - m->start_ms >= (int64_t)m->o.max_runtime * 1000)))
	{
		/* everything committed on the source before now is applied, then we stop */
		if (!cutover_end_position(m, &flush, err, sizeof(err)))
		{
			/* tried again at the next tick, on a fresh connection */
			event_say("Cutover", "warning", "cannot read the source's WAL position: %s", err);
			pgsession_refresh(m->src, PGSESSION_SOURCE);
			return;
		}
		m->cutover = true;
		m->cutover_ms = now;
		m->cutover_lsn = flush;
		m->so->endpos = flush;
		receiver_request_reply(m->rcv);
		event_say("Cutover", "info",
		          "%s: applying everything up to the source's WAL position %s, then cutting over "
		          "(Ctrl+C again aborts)",
		          mig_signals ? "interrupt" : "--max-runtime-seconds reached",
		          pgo_lsn_format(flush, flush_text));
		return;
	}
	if (m->cutover)
	{
		if (now - m->cutover_ms > (int64_t)m->o.cutover_timeout * 1000)
		{
			m->timed_out = true;
			m->so->stop = &mig_signals; /* set: the loop stops */
		}
		else if ((now - m->cutover_ms) % 1000 < 100)
			receiver_request_reply(m->rcv);
		return;
	}
	if (now < m->next_poll_ms)
		return;
	m->next_poll_ms = now + (int64_t)m->o.poll_secs * 1000;
	if (m->plan.nkeyless > 0 && srcplan_watch(&m->plan, m->src, err, sizeof(err)) == 1)
	{
		/* an UPDATE or DELETE the stream cannot carry: stop before any cutover */
		snprintf(m->halt_msg, sizeof(m->halt_msg), "%s", err);
		m->restart = true;
		m->so->stop = &mig_halt;
		return;
	}
	if (!mig_value(m->src, "SELECT pg_current_wal_flush_lsn()", flush_text, sizeof(flush_text), err,
	               sizeof(err)) ||
	    !pgo_lsn_parse(flush_text, &flush))
		return;
	applied = receiver_flush_lsn(m->rcv);
	received = atomic_load(&m->rcv->received_lsn);
	{
		long long lag = flush > applied ? (long long)(flush - applied) : 0;
		event e;

		double lag_secs = 0;

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
}
