/*
 * follow.c — the StreamApply phase: one pipeline per connection attempt,
 * reconnects with back-off while progress is being made, the end of
 * streaming (cutover, abort, halt, time-out) as an outcome and a message.
 *
 * follow_run reads as its story: set up an attempt (follow_start), stream
 * (pipeline_apply, with cutover_tick deciding when to stop), and when the
 * connection is lost, decide whether to try again (follow_can_reconnect,
 * follow_retry_*) and reconnect (follow_reconnect); then say how it ended
 * (follow_finish).
 *
 * Owns: the pipeline (static: the decoder's column storage is large) for
 * the length of follow_run. Never: drops the slot (the runner decides).
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "migrate_internal.h"

/* How a step of the reconnect loop ended. */
typedef enum follow_next
{
	FOLLOW_OK,     /* go on to the next step */
	FOLLOW_RETRY,  /* a lost connection (errbuf): try again after a back-off */
	FOLLOW_FAILED, /* what no reconnect can heal (errbuf) */
	FOLLOW_ABORTED /* Ctrl+C twice meanwhile (errbuf) */
} follow_next;

/* Tear down one streaming attempt (keeps the slot and the target's progress). */
static void
follow_teardown(mig *m, pipeline *pl)
{
	pipeline_close(pl, &m->rc, NULL, 0);
}

/*
 * Where the target is: the end of the last source transaction committed on
 * it, or, when this run applied nothing, where streaming started (the dump's
 * snapshot or the progress row): never 0/0.
 */
static pgo_lsn
follow_applied_lsn(const mig *m, const applier *app)
{
	return app->committed_lsn > m->stream_start_lsn ? app->committed_lsn : m->stream_start_lsn;
}

/* Wait ms for a reconnect, in small steps; false if the operator aborts meanwhile. */
static bool
follow_backoff(int ms)
{
	for (int waited = 0; waited < ms; waited += 100)
	{
		if (mig_abort)
			return false;
		usleep(100 * 1000);
	}
	return !mig_abort;
}

/* The budget at the first connection. */
void
follow_retry_init(follow_retry *r, int max_wait_secs, pgo_lsn start_lsn, int64_t now_ms)
{
	r->max_wait_ms = (int64_t)max_wait_secs * 1000;
	r->backoff_ms = 1000;
	r->last_progress_ms = now_ms;
	r->attempt_ms = now_ms;
	r->furthest = start_lsn;
}

/* No progress for longer than --reconnect-max-wait. */
bool
follow_retry_gives_up(const follow_retry *r, int64_t now_ms)
{
	return now_ms - r->last_progress_ms > r->max_wait_ms;
}

/* The wait before the next reconnect, doubling up to 10 s. */
int
follow_retry_next_backoff(follow_retry *r)
{
	int ms = r->backoff_ms;

	r->backoff_ms = ms * 2 > 10000 ? 10000 : ms * 2;
	return ms;
}

/* Progress is a position past the furthest, or a connection that held for the whole window. */
void
follow_retry_attempt_ended(follow_retry *r, pgo_lsn reached, int64_t now_ms)
{
	if (reached > r->furthest || now_ms - r->attempt_ms >= r->max_wait_ms)
	{
		if (reached > r->furthest)
			r->furthest = reached;
		r->last_progress_ms = now_ms;
		r->backoff_ms = 1000;
	}
}

/*
 * After a lost connection: give up, or wait the back-off and find the slot
 * again on a fresh replication connection.
 */
static follow_next
follow_reconnect(mig *m, pipeline *pl, follow_retry *retry, char *errbuf, size_t errlen)
{
	int64_t now = cli_now_ms();
	bool found;
	int wait_ms;

	/* start over from the slot and the target's progress row */
	follow_teardown(m, pl);
	m->rcv = NULL;
	m->app = NULL;
	if (follow_retry_gives_up(retry, now))
	{
		char why[1024];

		snprintf(why, sizeof(why), "%s", errbuf);
		snprintf(errbuf, errlen,
		         "gave up reconnecting: no progress for %lld s (--reconnect-max-wait %d): "
		         "%s; the slot is kept: run again with --resume once the cause is fixed",
		         (long long)((now - retry->last_progress_ms) / 1000), m->o.reconnect_max_wait, why);
		return FOLLOW_FAILED;
	}
	wait_ms = follow_retry_next_backoff(retry);
	event_say("Reconnect", "warning", "%s; reconnecting in %d s", errbuf, wait_ms / 1000);
	if (!follow_backoff(wait_ms))
	{
		snprintf(errbuf, errlen, "aborted while reconnecting; the slot \"%s\" is kept", m->o.slot);
		return FOLLOW_ABORTED;
	}
	errbuf[0] = '\0';
	if (!replconn_open(&m->rc, m->o.source, errbuf, errlen))
		return FOLLOW_RETRY;
	if (!replconn_find_slot(&m->rc, m->o.slot, &found, &m->slot, errbuf, errlen))
	{
		/* invalidated (max_slot_wal_keep_size): no reconnect brings the changes back */
		if (strcmp(m->slot.wal_status, "lost") == 0)
		{
			m->slot_gone = true;
			return FOLLOW_FAILED;
		}
		return FOLLOW_RETRY;
	}
	if (!found)
	{
		m->slot_gone = true;
		snprintf(errbuf, errlen,
		         "the replication slot \"%s\" is gone from the source (dropped or "
		         "invalidated): the changes since the dump are lost to this migration; "
		         "start over with --force-clean --drop-target-first",
		         m->o.slot);
		return FOLLOW_FAILED;
	}
	return FOLLOW_OK;
}

/* The catch-up's Lag events: the first chunk's at once, then one a --cutover-poll-secs. */
typedef struct follow_progress
{
	const mig *m;     /* borrowed */
	const applier *a; /* borrowed */
	int64_t every_ms;
	int64_t last_ms; /* when the last one was said (0: none yet) */
} follow_progress;

/* Between two chunks of the catch-up: a backlog of gigabytes is read for minutes. */
static void
follow_catch_up_progress(void *arg, pgo_lsn applied, pgo_lsn target, const catchup_stats *st)
{
	follow_progress *fp = arg;
	int64_t now = cli_now_ms();

	if (fp->last_ms && now - fp->last_ms < fp->every_ms)
		return;
	fp->last_ms = now;
	cutover_catch_up_lag(fp->m, fp->a, target, applied, st);
}

/*
 * Before the first START_REPLICATION: apply the backlog through SQL (see
 * catchup.h), the slot advanced as the target keeps it, and stream after
 * it. Not on a source older than 11 (no pg_replication_slot_advance), nor
 * with --catch-up stream (set too when the source may take this migration
 * for its synchronous standby: its commits would wait without a walsender).
 * A Ctrl+C stops it at the next commit; the stream then cuts over.
 */
static bool
follow_catch_up(mig *m, pipeline *pl, const char **pubs, replstart *start, char *errbuf,
                size_t errlen)
{
	follow_progress fp = {
	    .m = m, .a = &pl->app, .every_ms = (int64_t)m->o.poll_secs * 1000, .last_ms = 0};
	catchup_opts co = {.source = m->o.source,
	                   .slot = m->o.slot,
	                   .publications = pubs,
	                   .messages = m->ddl,
	                   .stop = &mig_signals,
	                   .progress = follow_catch_up_progress,
	                   .progress_arg = &fp};
	catchup_stats st;
	char lsn[PGO_LSN_STRLEN];
	int64_t t0 = cli_now_ms();

	if (m->o.catch_up_stream || m->rc.server_version < 110000)
		return true;
	if (pipeline_catch_up(pl, &co, &st, errbuf, errlen) == CATCHUP_FAILED)
	{
		char why[1024];

		snprintf(why, sizeof(why), "%s", errbuf);
		snprintf(errbuf, errlen,
		         "%s; the slot is kept at what the target has: run again with --resume (or "
		         "--resume --catch-up stream)",
		         why);
		return false;
	}
	if (pl->app.durable_lsn > start->start_lsn)
		start->start_lsn = pl->app.durable_lsn;
	if (st.messages > 0)
	{
		char mode[64];

		event_say("StreamApply", "info",
		          "applied the backlog through SQL: %llu messages (%.1f MB) in %llu chunk%s%s, "
		          "%.1f s, up to %s; streaming from there",
		          (unsigned long long)st.messages, (double)st.bytes / (1024.0 * 1024.0),
		          (unsigned long long)st.chunks, st.chunks == 1 ? "" : "s",
		          catchup_mode_text(&st, mode, sizeof(mode)), (double)(cli_now_ms() - t0) / 1000.0,
		          pgo_lsn_format(pl->app.durable_lsn, lsn));
	}
	return true;
}

/*
 * Set up one attempt: the pipeline, the applier on the target (which finds
 * the progress row), START_REPLICATION after what the target has, the
 * receiver. A failure of the first attempt ends the run, but for a slot
 * still busy with the walsender of an earlier run.
 */
static follow_next
follow_start(mig *m, pipeline *pl, apply_opts *ao, const char **pubs, int attempt,
             follow_retry *retry, char *errbuf, size_t errlen)
{
	replstart start = {0};
	char lsn[PGO_LSN_STRLEN];

	if (!pipeline_init(pl, apply_rel_free, errbuf, errlen))
		return FOLLOW_FAILED;
	/* a reconnect of this run finds its own row; a resumed run must find its own */
	ao->resuming = m->o.resume || attempt > 0;
	ao->guarded = m->guard_applied;
	if (!pipeline_open_applier(pl, ao, errbuf, errlen))
		return attempt == 0 ? FOLLOW_FAILED : FOLLOW_RETRY; /* the target is not back yet */
	if (pl->app.progress_note[0])
		event_say("StreamApply", "warning", "%s", pl->app.progress_note);
	if (!pipeline_prepare(pl, m->o.ring_size, replconn_max_proto_version(m->rc.server_version),
	                      errbuf, errlen))
		return FOLLOW_FAILED;
	start.slot = m->o.slot;
	start.start_lsn = pl->app.progress_lsn > m->slot.consistent_point ? pl->app.progress_lsn
	                                                                  : m->slot.consistent_point;
	if (attempt == 0 && !follow_catch_up(m, pl, pubs, &start, errbuf, errlen))
		return FOLLOW_FAILED;
	if (attempt == 0)
		follow_retry_init(retry, m->o.reconnect_max_wait, start.start_lsn, cli_now_ms());
	m->stream_start_lsn = start.start_lsn;
	start.publications = pubs;
	start.messages = m->ddl; /* the DDL capture's messages (ddl.h) */
	if (!pipeline_stream(pl, &m->rc, &start, 10000, m->o.receiver_timeout * 1000, errbuf, errlen))
		return attempt == 0 && !m->rc.slot_busy ? FOLLOW_FAILED : FOLLOW_RETRY;
	m->rcv = &pl->rcv;
	m->app = &pl->app;
	retry->attempt_ms = cli_now_ms();
	if (attempt == 0)
		event_say("StreamApply", "info", "streaming from %s%s", m->slot.name,
		          pl->app.replica_role ? ""
		                               : " (without session_replication_role = replica: the "
		                                 "guard holds the target's triggers and foreign keys)");
	else
		event_say("Reconnect", "info", "reconnected: streaming from %s again at %s", m->slot.name,
		          pgo_lsn_format(start.start_lsn, lsn));
	return FOLLOW_OK;
}

/*
 * After a stream ended short of the cutover: can a reconnect heal it? A lost
 * connection to either server can; a message larger than the ring, a
 * malformed message, an error of the walsender's that would come again, and
 * anything else stop the run at once.
 */
static bool
follow_can_reconnect(const pipeline *pl, stream_end end, char *errbuf, size_t errlen)
{
	if (end == STREAM_CLOSED && errbuf[0] == '\0')
		snprintf(errbuf, errlen, "the source ended the replication stream");
	if (end == STREAM_CLOSED)
		return !(pl->rcv.failed && pl->rcv.fatal);
	return end == STREAM_FAILED && apply_lost_target(&pl->app);
}

/* How far an attempt got: WAL received, or a target commit. */
static pgo_lsn
follow_reached(pipeline *pl)
{
	pgo_lsn reached = atomic_load(&pl->rcv.received_lsn);

	return pl->app.committed_lsn > reached ? pl->app.committed_lsn : reached;
}

/* The Cutover event: everything up to the cutover position is applied. */
static void
follow_report_cutover(const mig *m, const pipeline *pl)
{
	event e;
	char lsn[PGO_LSN_STRLEN], cut[PGO_LSN_STRLEN];
	double secs = (double)(cli_now_ms() - m->start_ms) / 1000.0;

	event_begin(&e, "Cutover");
	event_str(&e, "applied_lsn", pgo_lsn_format(follow_applied_lsn(m, &pl->app), lsn));
	if (m->cutover_lsn)
		event_str(&e, "cutover_lsn", pgo_lsn_format(m->cutover_lsn, cut));
	event_int(&e, "row_changes",
	          (int64_t)(pl->app.stats.inserts + pl->app.stats.updates + pl->app.stats.deletes));
	event_int(&e, "transactions", (int64_t)pl->app.stats.txns);
	if (m->o.skip_missing)
		event_int(&e, "missing_rows_skipped", (int64_t)pl->app.stats.missing_rows);
	event_num(&e, "seconds", secs);
	event_end(&e, "everything up to the cutover position is applied");
}

/*
 * The stream stopped at the cutover's end position (STREAM_ENDPOS) or on the
 * tick's word (STREAM_STOPPED: a halt, the cutover timed out, or an abort):
 * stop the receiver and say how it ended; an exit code.
 */
static int
follow_finish(mig *m, pipeline *pl, stream_end end, char *errbuf, size_t errlen)
{
	char lsn[PGO_LSN_STRLEN], cut[PGO_LSN_STRLEN];

	if (!pipeline_stop(pl, errbuf, errlen))
		return EXIT_ERROR;
	if (end == STREAM_STOPPED)
	{
		if (m->restart)
		{
			snprintf(errbuf, errlen, "%s", m->halt_msg);
			return EXIT_ERROR;
		}
		if (m->timed_out)
		{
			snprintf(errbuf, errlen,
			         "cutover timed out after %d s: applied up to %s of %s; nothing was cut over "
			         "(the slot is kept); raise --cutover-timeout or check the target",
			         m->o.cutover_timeout, pgo_lsn_format(follow_applied_lsn(m, &pl->app), lsn),
			         pgo_lsn_format(m->cutover_lsn, cut));
			return EXIT_ERROR;
		}
		event_say("Cutover", "warning", "aborted: applied up to %s; the slot \"%s\" is kept",
		          pgo_lsn_format(follow_applied_lsn(m, &pl->app), lsn), m->o.slot);
		return EXIT_ABORTED;
	}
	if (m->plan.nkeyless > 0)
	{
		/* once more, once every commit before the cutover moment is counted */
		int64_t wait = m->cutover_ms + MIG_STATS_DELAY_MS(m->src_version) - cli_now_ms();
		int changed;

		if (wait > 0)
			event_say("Cutover", "info",
			          "waiting for the source's statistics to show every update and delete "
			          "before the interrupt on the tables without a key");
		if (wait > 0 && !follow_backoff((int)wait))
		{
			snprintf(errbuf, errlen, "aborted before the cutover; the slot \"%s\" is kept",
			         m->o.slot);
			return EXIT_ABORTED;
		}
		changed = srcplan_watch(&m->plan, m->src, errbuf, errlen);
		if (changed != 0)
		{
			m->restart = changed == 1;
			return EXIT_ERROR;
		}
	}
	follow_report_cutover(m, pl);
	return EXIT_OK;
}

int
follow_run(mig *m, char *errbuf, size_t errlen)
{
	static pipeline pl; /* big: the decoder's column storage */
	/* a second Ctrl+C stops the stream at once (the tick says so too, at its next turn) */
	stream_opts so = {.tick = cutover_tick, .tick_arg = m, .stop = &mig_abort};
	apply_opts ao = {0};
	const char *pubs[3] = {m->o.publication, NULL, NULL};
	follow_retry retry = {0};
	cutover_monitor monitor; /* the source's queries of the tick, off the apply thread */
	stream_end end = STREAM_FAILED;
	int rc = EXIT_ERROR;

	if (m->plan.nkeyless > 0)
		pubs[1] = m->plan.keyless_publication;
	ao.target = m->o.target;
	ao.slot_name = m->o.slot;
	ao.group_txns = m->o.group_commit;
	ao.catchup_group_txns = m->o.group_commit_given ? m->o.group_commit : 0;
	ao.skip_missing = m->o.skip_missing;
	ao.synchronous_commit = m->o.synchronous_commit == 1;
	ao.skip_lsn = m->o.skip_lsn;
	ao.ddl = m->ddl;
	ao.skip_ddl_lsn = m->o.skip_ddl_lsn;
	ao.schemas = m->o.schemas;
	ao.nschemas = m->o.nschemas;
	ao.ex_schemas = m->o.ex_schemas;
	ao.nex_schemas = m->o.nex_schemas;
	/* the progress row is this source's and this run's (the slot as created) */
	ao.source_system = m->rc.system_id;
	ao.run_lsn = m->token.consistent_lsn;
	if (!cutover_monitor_start(&monitor, m, errbuf, errlen))
		return EXIT_ERROR;
	m->start_ms = cli_now_ms();
	m->next_poll_ms = m->start_ms;
	for (int attempt = 0;; attempt++)
	{
		follow_next next = FOLLOW_OK;

		if (attempt > 0)
		{
			/* that session is lost to us: the next applier need not wait for it */
			if (pl.app_open && pl.app.conn)
				ao.previous_backend_pid = PQbackendPID(pl.app.conn);
			next = follow_reconnect(m, &pl, &retry, errbuf, errlen);
		}
		if (next == FOLLOW_OK)
			next = follow_start(m, &pl, &ao, pubs, attempt, &retry, errbuf, errlen);
		if (next == FOLLOW_ABORTED)
			rc = EXIT_ABORTED;
		if (next == FOLLOW_ABORTED || next == FOLLOW_FAILED)
			goto done;
		if (next == FOLLOW_RETRY)
			continue;
		/* a reconnect during the cutover streams up to the same end position */
		so.endpos = m->cutover ? m->cutover_lsn : 0;
		end = pipeline_apply(&pl, &so, errbuf, errlen);
		if (end == STREAM_ENDPOS || end == STREAM_STOPPED)
			break;
		if (!follow_can_reconnect(&pl, end, errbuf, errlen))
			goto done;
		follow_retry_attempt_ended(&retry, follow_reached(&pl), cli_now_ms());
	}
	/* m->src is follow_finish's again */
	cutover_monitor_stop(&monitor, m);
	rc = follow_finish(m, &pl, end, errbuf, errlen);
done:
	cutover_monitor_stop(&monitor, m);
	if (rc != EXIT_OK)
		pipeline_abandon(&pl, errbuf, errlen);
	m->rcv = NULL;
	m->app = NULL;
	pipeline_free(&pl);
	return rc;
}
