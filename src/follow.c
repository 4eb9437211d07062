/*
 * follow.c — the StreamApply phase: one pipeline per connection attempt,
 * reconnects with back-off while progress is being made, the end of
 * streaming (cutover, abort, halt, time-out) as an outcome and a message.
 *
 * Owns: the pipeline (static: the decoder's column storage is large) for
 * the length of follow_run. Never: drops the slot (the runner decides).
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

/* Tear down one streaming attempt (keeps the slot and the target's progress). */
static void
follow_teardown(mig *m, pipeline *pl)
{
	pipeline_abandon(pl, NULL, 0);
	replconn_close(&m->rc);
	pipeline_free(pl);
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

int
follow_run(mig *m, char *errbuf, size_t errlen)
{
	static pipeline pl; /* big: the decoder's column storage */
	stream_opts so = {0};
	apply_opts ao = {0};
	const char *pubs[3] = {m->o.publication, NULL, NULL};
	int rc = EXIT_ERROR, backoff_ms = 1000;
	stream_end end = STREAM_FAILED;
	static volatile sig_atomic_t never = 0;
	/*
	 * --reconnect-max-wait counts from the last progress: WAL received or a
	 * target commit past anything before, or a connection that held for the
	 * whole window. A reconnect that succeeds and dies again before getting
	 * anywhere does not start the window over.
	 */
	int64_t last_progress_ms = 0, attempt_ms = 0;
	pgo_lsn furthest = 0;

	if (m->plan.nkeyless > 0)
		pubs[1] = m->plan.keyless_publication;
	ao.target = m->o.target;
	ao.slot_name = m->o.slot;
	ao.group_txns = m->o.group_commit;
	ao.skip_missing = m->o.skip_missing;
	ao.skip_lsn = m->o.skip_lsn;
	/* the progress row is this source's and this run's (the slot as created) */
	ao.source_system = m->rc.system_id;
	ao.run_lsn = m->token.consistent_lsn;
	so.stop = &never;
	so.tick = cutover_tick;
	so.tick_arg = m;
	m->so = &so;
	m->start_ms = cli_now_ms();
	m->next_poll_ms = m->start_ms;
	for (int attempt = 0;; attempt++)
	{
		replstart start = {0};
		bool found;

		if (attempt > 0)
		{
			/* a lost connection: start over from the slot and the target's progress row */
			int64_t now = cli_now_ms();

			follow_teardown(m, &pl);
			m->rcv = NULL;
			m->app = NULL;
			if (now - last_progress_ms > (int64_t)m->o.reconnect_max_wait * 1000)
			{
				char why[1024];

				snprintf(why, sizeof(why), "%s", errbuf);
				snprintf(errbuf, errlen,
				         "gave up reconnecting: no progress for %lld s (--reconnect-max-wait %d): "
				         "%s; the slot is kept: run again with --resume once the cause is fixed",
				         (long long)((now - last_progress_ms) / 1000), m->o.reconnect_max_wait,
				         why);
				goto done;
			}
			event_say("Reconnect", "warning", "%s; reconnecting in %d s", errbuf,
			          backoff_ms / 1000);
			if (!follow_backoff(backoff_ms))
			{
				rc = EXIT_ABORTED;
				snprintf(errbuf, errlen, "aborted while reconnecting; the slot \"%s\" is kept",
				         m->o.slot);
				goto done;
			}
			backoff_ms = backoff_ms * 2 > 10000 ? 10000 : backoff_ms * 2;
			errbuf[0] = '\0';
			if (!replconn_open(&m->rc, m->o.source, errbuf, errlen))
				continue;
			if (!replconn_find_slot(&m->rc, m->o.slot, &found, &m->slot, errbuf, errlen))
			{
				/* invalidated (max_slot_wal_keep_size): no reconnect brings the changes back */
				if (strcmp(m->slot.wal_status, "lost") == 0)
				{
					m->slot_gone = true;
					goto done;
				}
				continue;
			}
			if (!found)
			{
				m->slot_gone = true;
				snprintf(errbuf, errlen,
				         "the replication slot \"%s\" is gone from the source (dropped or "
				         "invalidated): the changes since the dump are lost to this migration; "
				         "start over with --force-clean --drop-target-first",
				         m->o.slot);
				goto done;
			}
		}
		if (!pipeline_init(&pl, apply_rel_free, errbuf, errlen))
			goto done;
		/* a reconnect of this run finds its own row; a resumed run must find its own */
		ao.resuming = m->o.resume || attempt > 0;
		ao.guarded = m->guard_applied;
		if (!pipeline_open_applier(&pl, &ao, errbuf, errlen))
		{
			if (attempt == 0)
				goto done;
			continue; /* the target is not back yet */
		}
		if (pl.app.progress_note[0])
			event_say("StreamApply", "warning", "%s", pl.app.progress_note);
		if (!pipeline_prepare(&pl, m->o.ring_size, replconn_max_proto_version(m->rc.server_version),
		                      errbuf, errlen))
			goto done;
		start.slot = m->o.slot;
		start.start_lsn = pl.app.progress_lsn > m->slot.consistent_point ? pl.app.progress_lsn
		                                                                 : m->slot.consistent_point;
		if (attempt == 0)
		{
			furthest = start.start_lsn;
			last_progress_ms = cli_now_ms();
		}
		m->stream_start_lsn = start.start_lsn;
		start.proto_version = pipeline_proto_version(&pl);
		start.publications = pubs;
		start.messages = false;
		start.client_encoding = pl.app.encoding[0] ? pl.app.encoding : NULL;
		if (!replconn_start(&m->rc, &start, errbuf, errlen) ||
		    !pipeline_start(&pl, &m->rc, 10000, m->o.receiver_timeout * 1000, errbuf, errlen))
		{
			if (attempt == 0 && !m->rc.slot_busy)
				goto done;
			continue;
		}
		m->rcv = &pl.rcv;
		m->app = &pl.app;
		attempt_ms = cli_now_ms();
		if (attempt == 0)
			event_say("StreamApply", "info", "streaming from %s%s", m->slot.name,
			          pl.app.replica_role ? ""
			                              : " (without session_replication_role = replica: the "
			                                "guard holds the target's triggers and foreign keys)");
		else
		{
			char lsn[PGO_LSN_STRLEN];

			event_say("Reconnect", "info", "reconnected: streaming from %s again at %s",
			          m->slot.name, pgo_lsn_format(start.start_lsn, lsn));
		}
		end = pipeline_apply(&pl, &so, errbuf, errlen);
		if (end == STREAM_ENDPOS || end == STREAM_STOPPED)
			break;
		if (end == STREAM_CLOSED && errbuf[0] == '\0')
			snprintf(errbuf, errlen, "the source ended the replication stream");
		/*
		 * A lost connection to either server is retried; what no reconnect can
		 * heal (a message larger than the ring, a malformed message, an error
		 * of the walsender's that would come again) and anything else stops
		 * the run at once.
		 */
		if (!(end == STREAM_CLOSED || (end == STREAM_FAILED && apply_lost_target(&pl.app))) ||
		    (end == STREAM_CLOSED && pl.rcv.failed && pl.rcv.fatal))
			goto done;
		{
			int64_t now = cli_now_ms();
			pgo_lsn reached = atomic_load(&pl.rcv.received_lsn);

			if (pl.app.committed_lsn > reached)
				reached = pl.app.committed_lsn;
			if (reached > furthest || now - attempt_ms >= (int64_t)m->o.reconnect_max_wait * 1000)
			{
				furthest = reached > furthest ? reached : furthest;
				last_progress_ms = now;
				backoff_ms = 1000;
			}
		}
	}
	if (!pipeline_stop(&pl, errbuf, errlen))
		goto done;
	if (end == STREAM_STOPPED)
	{
		char lsn[PGO_LSN_STRLEN], cut[PGO_LSN_STRLEN];

		if (m->restart)
		{
			snprintf(errbuf, errlen, "%s", m->halt_msg);
			goto done;
		}
		if (m->timed_out)
		{
			snprintf(errbuf, errlen,
			         "cutover timed out after %d s: applied up to %s of %s; nothing was cut over "
			         "(the slot is kept); raise --cutover-timeout or check the target",
			         m->o.cutover_timeout, pgo_lsn_format(follow_applied_lsn(m, &pl.app), lsn),
			         pgo_lsn_format(m->cutover_lsn, cut));
			goto done;
		}
		event_say("Cutover", "warning", "aborted: applied up to %s; the slot \"%s\" is kept",
		          pgo_lsn_format(follow_applied_lsn(m, &pl.app), lsn), m->o.slot);
		rc = EXIT_ABORTED;
		goto done;
	}
	if (m->plan.nkeyless > 0)
	{
		/* once more, once every commit before the cutover moment is counted */
		if (m->cutover_ms + MIG_STATS_DELAY_MS(m->src_version) > cli_now_ms())
			event_say("Cutover", "info",
			          "waiting for the source's statistics to show every update and delete "
			          "before the interrupt on the tables without a key");
		int64_t wait = m->cutover_ms + MIG_STATS_DELAY_MS(m->src_version) - cli_now_ms();
		int changed;

		if (wait > 0 && !follow_backoff((int)wait))
		{
			rc = EXIT_ABORTED;
			snprintf(errbuf, errlen, "aborted before the cutover; the slot \"%s\" is kept",
			         m->o.slot);
			goto done;
		}
		changed = srcplan_watch(&m->plan, m->src, errbuf, errlen);
		if (changed != 0)
		{
			m->restart = changed == 1;
			goto done;
		}
	}
	{
		event e;
		char lsn[PGO_LSN_STRLEN], cut[PGO_LSN_STRLEN];
		double secs = (double)(cli_now_ms() - m->start_ms) / 1000.0;

		event_begin(&e, "Cutover");
		event_str(&e, "applied_lsn", pgo_lsn_format(follow_applied_lsn(m, &pl.app), lsn));
		if (m->cutover_lsn)
			event_str(&e, "cutover_lsn", pgo_lsn_format(m->cutover_lsn, cut));
		event_int(&e, "row_changes",
		          (int64_t)(pl.app.stats.inserts + pl.app.stats.updates + pl.app.stats.deletes));
		event_int(&e, "transactions", (int64_t)pl.app.stats.txns);
		if (m->o.skip_missing)
			event_int(&e, "missing_rows_skipped", (int64_t)pl.app.stats.missing_rows);
		event_num(&e, "seconds", secs);
		event_end(&e, "everything up to the cutover position is applied");
	}
	rc = EXIT_OK;
done:
	if (rc != EXIT_OK)
		pipeline_abandon(&pl, errbuf, errlen);
	m->rcv = NULL;
	m->app = NULL;
	m->so = NULL;
	pipeline_free(&pl);
	return rc;
}
