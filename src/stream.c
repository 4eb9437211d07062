/*
 * stream.c — the apply thread's loop (see stream.h).
 *
 * Records are held in the ring while the applier's multi-row INSERT points
 * into them, and given back as soon as it has been sent; when the ring runs
 * dry, the collected rows are sent and the open group committed, so a quiet
 * source is never left waiting on an uncommitted target transaction. While
 * the target is still committing the group before, the open one gathers
 * what comes meanwhile and is committed as soon as that answer is in: one
 * commit in flight while the stream is busy (fewer, larger groups, so the
 * target keeps up), none waiting for anything when it is light. Behind
 * the source when the ring runs dry, the group waits a moment for more
 * (stream_hold).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "replconn.h"
#include "stream.h"

#define STREAM_IDLE_WAIT_MS 10
#define STREAM_BUSY_WAIT_MS 1 /* while the target's answer to a commit is awaited */
#define STREAM_TICK_MS      100
/*
 * Behind the source (stream_lag_behind), a group waits up to STREAM_HOLD_MS
 * for more before it commits, while it has fewer than STREAM_HOLD_MAX_TXNS
 * transactions.
 */
#define STREAM_HOLD_MS       1
#define STREAM_HOLD_MAX_TXNS 64

typedef struct stream_state
{
	const stream_opts *o;
	pgo_lsn endpos; /* o->endpos, or where a tick moved it */
	receiver *rcv;
	ring *rg;
	applier *a;
	pgo_lsn acked;
	int64_t last_tick;
	stream_lag lag;
} stream_state;

static void
stream_ack(stream_state *s, pgo_lsn lsn)
{
	if (lsn > s->acked)
	{
		s->acked = lsn;
		receiver_set_flush(s->rcv, lsn);
	}
}

/*
 * The next record, waiting up to ms: from the ring, or, when the receiver
 * has handed the connection over (a light stream), read from the socket
 * here (receiver_pump).
 */
static ring_status
stream_peek(stream_state *s, int ms, ring_record *rec)
{
	ring_status st = ring_peek(s->rg, 0, rec);
	int put;

	if (st != RING_TIMEOUT)
		return st;
	put = receiver_pump(s->rcv, ms);
	if (put == RECEIVER_PUMP_NOT_HANDED)
		return ms > 0 ? ring_peek(s->rg, ms, rec) : RING_TIMEOUT;
	/* what was read, or the end (a failure closed the ring) */
	return ring_peek(s->rg, 0, rec);
}

/* Call the tick when it is due and act on its answer; true: stop now. */
static bool
stream_tick(stream_state *s)
{
	int64_t now;
	pgo_lsn endpos = 0;

	if (s->o->tick == NULL)
		return false;
	now = cli_now_ms();
	if (now - s->last_tick < STREAM_TICK_MS)
		return false;
	s->last_tick = now;
	switch (s->o->tick(s->o->tick_arg, &endpos))
	{
		case STREAM_GO_ON:
			return false;
		case STREAM_SET_ENDPOS:
			s->endpos = endpos;
			return false;
		case STREAM_STOP:
			return true;
	}
	return false;
}

/*
 * Hold the group open for more? Only while the stream is behind the source:
 * a backlog that the walsender hands over one transaction at a time (it
 * is short of CPU) would otherwise be committed one transaction per group,
 * and each commit costs the target more than the transaction does, which
 * keeps the stream behind. A stream that keeps up commits at once.
 */
static bool
stream_hold(stream_state *s)
{
	const applier *a = s->a;

	/* a source waiting for us as its synchronous standby is not kept waiting longer */
	if (!a->group_open || a->in_txn || a->group_txns >= STREAM_HOLD_MAX_TXNS ||
	    a->last_commit_time <= 0 || a->source_waits)
		return false;
	return stream_lag_behind(&s->lag, replconn_now() - a->last_commit_time, cli_now_ms());
}

bool
stream_lag_behind(stream_lag *l, int64_t delay_us, int64_t now_ms)
{
	if (l->window_start_ms == 0 || now_ms - l->window_start_ms >= STREAM_LAG_WINDOW_MS)
	{
		l->floor_us = l->window_start_ms == 0 ? delay_us : l->window_min_us;
		l->window_min_us = delay_us;
		l->window_start_ms = now_ms;
	}
	if (delay_us < l->window_min_us)
		l->window_min_us = delay_us;
	if (delay_us < l->floor_us)
		l->floor_us = delay_us;
	return delay_us - l->floor_us >= STREAM_BEHIND_US;
}

/* Send what is collected and give the held records back. */
static bool
stream_release(stream_state *s)
{
	if (!apply_send_pending(s->a))
		return false;
	ring_release_held(s->rg);
	return true;
}

/* Commit what can be committed, wait for every answer, acknowledge. */
static bool
stream_finish(stream_state *s)
{
	bool ok = stream_release(s) && apply_end_group(s->a) && apply_make_durable(s->a);

	stream_ack(s, apply_flushed_lsn(s->a));
	return ok;
}

static stream_end
stream_fail(stream_state *s, char *errbuf, size_t errlen)
{
	snprintf(errbuf, errlen, "%s", s->a->errmsg[0] ? s->a->errmsg : "apply failed");
	stream_ack(s, apply_flushed_lsn(s->a));
	return STREAM_FAILED;
}

/*
 * The end position is reached: commit, and wait for the target. A stop that
 * came while it waited (a second Ctrl+C while a lock on the target held the
 * last commit) still wins: the caller was told to stop, not to go on.
 */
static stream_end
stream_endpos(stream_state *s, char *errbuf, size_t errlen)
{
	if (!stream_finish(s))
		return stream_fail(s, errbuf, errlen);
	return s->o->stop && *s->o->stop ? STREAM_STOPPED : STREAM_ENDPOS;
}

stream_end
stream_apply(const stream_opts *o, receiver *rcv, ring *rg, pgo_decoder *dec, relcache *rels,
             applier *a, char *errbuf, size_t errlen)
{
	stream_state s = {.o = o, .endpos = o->endpos, .rcv = rcv, .rg = rg, .a = a, .acked = 0};

	s.last_tick = cli_now_ms();
	/* a light stream is read here, not handed over by the receiver thread */
	receiver_allow_hand_over(rcv);
	stream_ack(&s, apply_flushed_lsn(a));
	for (;;)
	{
		ring_record rec;
		ring_status st;
		pgo_message msg;

		if ((o->stop && *o->stop) || stream_tick(&s))
			return stream_finish(&s) ? STREAM_STOPPED : stream_fail(&s, errbuf, errlen);
		st = stream_peek(&s, 0, &rec);
		if (st == RING_TIMEOUT)
		{
			/* the ring ran dry: send, commit between transactions, acknowledge */
			if (!stream_release(&s))
				return stream_fail(&s, errbuf, errlen);
			if (a->group_open && !a->in_txn && apply_commit_in_flight(a))
			{
				/* the commit before is unanswered: gather until it is (then round again) */
				if (!apply_await_commit(a, STREAM_BUSY_WAIT_MS))
					return stream_fail(&s, errbuf, errlen);
				stream_ack(&s, apply_flushed_lsn(a));
				continue;
			}
			if (stream_hold(&s))
			{
				/* behind: what comes within STREAM_HOLD_MS joins this group */
				receiver_consumer_idle(rcv, true);
				st = stream_peek(&s, STREAM_HOLD_MS, &rec);
				receiver_consumer_idle(rcv, false);
			}
			if (st == RING_TIMEOUT)
			{
				if (!apply_end_group(a))
					return stream_fail(&s, errbuf, errlen);
				stream_ack(&s, apply_flushed_lsn(a));
				/*
				 * nothing to do until more comes (the receiver hands it over
				 * at once); a commit in flight is acknowledged as soon as its
				 * answer is in (a source waiting for us as its synchronous
				 * standby waits that long)
				 */
				receiver_consumer_idle(rcv, true);
				st = stream_peek(
				    &s, !a->in_txn && apply_busy(a) ? STREAM_BUSY_WAIT_MS : STREAM_IDLE_WAIT_MS,
				    &rec);
				receiver_consumer_idle(rcv, false);
				if (st == RING_TIMEOUT)
				{
					if (!apply_sync_idle(a) || !apply_poll(a))
						return stream_fail(&s, errbuf, errlen);
					stream_ack(&s, apply_flushed_lsn(a));
					continue;
				}
			}
		}
		if (st != RING_OK)
		{
			/* the receiver ended: commit what is complete */
			if (!stream_finish(&s))
				return stream_fail(&s, errbuf, errlen);
			if (!receiver_stop(rcv, errbuf, errlen))
				return STREAM_CLOSED;
			errbuf[0] = '\0';
			return STREAM_CLOSED;
		}
		if (rec.kind == RECEIVER_REC_KEEPALIVE)
		{
			pgo_lsn wal_end = rec.tag;

			ring_hold(rg, &rec);
			if (!apply_has_pending(a))
				ring_release_held(rg);
			if (s.endpos && wal_end > s.endpos)
				wal_end = s.endpos;
			/*
			 * Between transactions, take the target's answers that are in
			 * and make the last commits durable when that is due: a stream
			 * of keepalives alone (a source shutting down asks for a reply
			 * to each, and waits until its WAL end is acknowledged) must
			 * not keep the idle work below from ever running.
			 */
			if (!a->in_txn && !a->group_open &&
			    (!apply_poll(a) || !apply_sync_idle(a) || !apply_poll(a)))
				return stream_fail(&s, errbuf, errlen);
			/*
			 * nothing received is uncommitted, nor waits for the target's disk:
			 * the server's WAL end may be acknowledged
			 */
			if (!apply_busy(a) && apply_flushed_lsn(a) >= a->committed_lsn)
				stream_ack(&s, wal_end > a->committed_lsn ? wal_end : a->committed_lsn);
			if (s.endpos && rec.tag >= s.endpos && !a->in_txn)
				return stream_endpos(&s, errbuf, errlen);
			continue;
		}
		if (pgo_decode(dec, rec.data, rec.len - 1, &msg) != PGO_ERR_OK)
		{
			char where[PGO_LSN_STRLEN], detail[512];

			pgo_error_format(&dec->error, detail, sizeof(detail));
			/* commit what came before; nothing after the last good transaction is acknowledged */
			if (!a->in_txn)
				(void)stream_finish(&s);
			else
			{
				/* the open group stays uncommitted; answers already here may commit earlier ones */
				if (apply_poll(a))
					stream_ack(&s, apply_flushed_lsn(a));
			}
			snprintf(errbuf, errlen,
			         "malformed message from the source at %s: %s (the same message would come "
			         "again after a reconnect: please report this)",
			         pgo_lsn_format(rec.tag, where), detail);
			return STREAM_FAILED;
		}
		if (msg.type == PGO_MSG_BEGIN && s.endpos && msg.u.begin.final_lsn > s.endpos)
		{
			/* the first transaction past endpos ends the run, unapplied */
			return stream_endpos(&s, errbuf, errlen);
		}
		/* a changed Relation frees the statements a collected INSERT still uses */
		if (msg.type == PGO_MSG_RELATION && !stream_release(&s))
			return stream_fail(&s, errbuf, errlen);
		if (!relcache_observe(rels, &msg, errbuf, errlen))
			return STREAM_FAILED;
		if (!apply_message(a, &msg, rec.tag, rec.len))
			return stream_fail(&s, errbuf, errlen);
		ring_hold(rg, &rec);
		if (!apply_has_pending(a))
			ring_release_held(rg);
		else if (ring_held(rg) >= rg->capacity / 4 && !stream_release(&s))
			return stream_fail(&s, errbuf, errlen);
		if (msg.type == PGO_MSG_COMMIT)
			stream_ack(&s, apply_flushed_lsn(a));
	}
}

bool
stream_decoder_init(stream_decoder *sd, int proto, relcache *cache, char *errbuf, size_t errlen)
{
	memset(&sd->cfg, 0, sizeof(sd->cfg));
	sd->cfg.proto_version = proto;
	sd->cfg.max_columns = STREAM_MAX_COLUMNS;
	sd->cfg.old_cols = sd->old_cols;
	sd->cfg.new_cols = sd->new_cols;
	sd->cfg.rel_cols = sd->rel_cols;
	sd->cfg.natts = relcache_natts;
	sd->cfg.natts_arg = cache;
	if (pgo_decoder_init(&sd->dec, &sd->cfg) != PGO_ERR_OK)
	{
		snprintf(errbuf, errlen, "could not set up the decoder for protocol version %d", proto);
		return false;
	}
	return true;
}
